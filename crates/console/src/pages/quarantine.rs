//! stub
pub async fn page() -> &'static str {
    "todo"
}
pub async fn add() -> &'static str {
    "todo"
}
pub async fn release() -> &'static str {
    "todo"
}
pub async fn notice() -> &'static str {
    "todo"
}
