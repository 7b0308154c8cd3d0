//! stub
pub async fn queue() -> &'static str {
    "todo"
}
pub async fn page() -> &'static str {
    "todo"
}
pub async fn update() -> &'static str {
    "todo"
}
pub async fn note() -> &'static str {
    "todo"
}
pub async fn report() -> &'static str {
    "todo"
}
