//! Who makes a request, and what their role allows.

use serde::{Deserialize, Serialize};

/// What a caller may do, from least to most. Each role may do everything the ones before it
/// may.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries and subscriptions.
    Viewer,
    /// And creating and updating products, and every stock change.
    Manager,
    /// And deleting and restoring products, and administrative operations.
    Admin,
}

/// An authenticated caller; its subject is recorded as the `actor` of every movement it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The caller's identity (a token's `sub`).
    pub subject: String,
    /// What the caller may do.
    pub role: Role,
}

impl Actor {
    /// The longest subject accepted, in characters (it travels in every event).
    pub const MAX_SUBJECT_CHARS: usize = 200;

    /// Every caller when no authentication is configured (local development).
    pub fn open_mode() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            role: Role::Admin,
        }
    }
}
