//! The sans-IO SMPP session state machine.
