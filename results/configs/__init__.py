"""Tuned config tables shipped with mlatune, one JSON file per device, kernel, KV format, h_q and s_q."""
