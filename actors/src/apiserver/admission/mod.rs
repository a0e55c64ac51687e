//! Admission (placeholder until the admission branch lands).
use ferry_api::object::Status;
use ferry_api::resources::Resource;
use serde_json::Value;

/// Create or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create.
    Create,
    /// Update.
    Update,
}

/// Admits an object.
pub fn admit(
    _res: &Resource,
    _obj: &mut Value,
    _old: Option<&Value>,
    _op: Operation,
) -> Result<(), Status> {
    Ok(())
}
