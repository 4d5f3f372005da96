"""Graph resources the emulator serves, one module (and one route table) per resource."""
