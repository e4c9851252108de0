//! Serving certificate source (filled in part 2).
