"""The terminal UI: reads run folders and sends control messages; never touches a trainer's objects."""
