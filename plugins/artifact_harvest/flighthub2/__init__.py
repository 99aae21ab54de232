"""DJI FlightHub 2 (司空 2): open-modeling reconstruction and model management, start → wait → download."""
