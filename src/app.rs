//! Wiring: starts every part from a Config. (placeholder)
