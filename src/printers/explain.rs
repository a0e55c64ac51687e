use ferry_api::resources::Resource;
pub fn explain(_res: &Resource, _field_path: &str) -> Result<String, String> {
    Err("x".into())
}
