"""Control logic as pure state machines (no `machine`, no I/O): the cooling-point valve."""
