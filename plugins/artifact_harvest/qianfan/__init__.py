"""Baidu Qianfan: export a model version, wait for the package, download and archive it."""
