"""One Blueprint per event source; each trigger parses its input and delegates to shared/."""
