//! Replays the official examples; filled in below.
