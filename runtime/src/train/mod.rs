//! CPU backward and trainer.
