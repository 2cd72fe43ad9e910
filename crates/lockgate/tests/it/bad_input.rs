//! Bad input of every kind: a clear error naming the place, and nothing written.
