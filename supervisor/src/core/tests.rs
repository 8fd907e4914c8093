//! Core state machine tests with a recording executor and a hand-driven clock.
