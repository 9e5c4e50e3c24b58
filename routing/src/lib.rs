//! Least-cost routing: rate decks, the precomputed prefix table, health, circuit breakers and
//! token buckets. Pure: no I/O, no clock (time is passed in).
#![warn(missing_docs)]
