//! Delivery receipt parsing.
