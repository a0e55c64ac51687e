//! Table tests for admission, one module per area.
