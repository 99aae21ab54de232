"""MiniMax: video generation and asynchronous text-to-speech, waited on and archived through the Files API."""
