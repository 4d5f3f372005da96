"""The one-machine stack: mini-host, Graph emulator, Azurite launcher, demo. Never deployed."""
