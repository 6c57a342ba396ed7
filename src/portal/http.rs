//! Talking to a real portal over HTTPS (filled by the reconcile work).
