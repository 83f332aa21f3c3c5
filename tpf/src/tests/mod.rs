//! Tests that exercise the whole crate: derived types against the dynamic codec, canonical
//! rejection, evolution, views, and property-based round trips.

mod smoke;
