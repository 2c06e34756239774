//! `GET /admin/console`: one static page (no external assets) whose script calls the admin
//! JSON API with the token the operator types in. The page itself holds no data, so it is
//! served without the token; every figure on it comes from token-checked endpoints.

use actix_web::HttpResponse;

const PAGE: &str = include_str!("console.html");

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(PAGE)
}
