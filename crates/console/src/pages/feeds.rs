//! stub
pub async fn list() -> &'static str {
    "todo"
}
pub async fn page() -> &'static str {
    "todo"
}
pub async fn upload() -> &'static str {
    "todo"
}
pub async fn restore() -> &'static str {
    "todo"
}
pub async fn check() -> &'static str {
    "todo"
}
pub async fn publish() -> &'static str {
    "todo"
}
