//! Tests of the spec pipeline as a whole, across file kinds.

mod fuzz;
