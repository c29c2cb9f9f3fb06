//! The route table: every (method, path template) the tracker serves. [`crate::http`] serves
//! exactly these, `openapi.yaml` must describe exactly these (tested), and
//! [`crate::metrics`] labels requests with these templates (so ids never become labels).
//! Plain data, importing nothing, so the metrics need not import the HTTP layer.

/// Every (method, path) the tracker serves; `openapi.yaml` must describe exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/verify"),
    ("POST", "/api/v1/auth/resend-verification"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("GET", "/api/v1/me"),
    ("PATCH", "/api/v1/me"),
    ("DELETE", "/api/v1/me"),
    ("GET", "/api/v1/me/watchlist"),
    ("PUT", "/api/v1/me/watchlist/{movie_id}"),
    ("DELETE", "/api/v1/me/watchlist/{movie_id}"),
    ("GET", "/api/v1/me/progress/{movie_id}"),
    ("PUT", "/api/v1/me/progress/{movie_id}"),
    ("GET", "/api/v1/me/history"),
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{room_id}"),
    ("GET", "/api/v1/rooms/{room_id}/ws"),
    ("GET", "/api/v1/me/subscription"),
    ("GET", "/api/v1/me/notifications"),
    ("POST", "/api/v1/billing/webhook"),
    ("POST", "/api/v1/requests"),
    ("GET", "/api/v1/requests"),
    ("POST", "/api/v1/requests/claim"),
    ("POST", "/api/v1/requests/{id}/progress"),
    ("POST", "/api/v1/requests/{id}/done"),
    ("POST", "/api/v1/requests/{id}/failed"),
    ("GET", "/api/v1/admin/requests"),
    ("POST", "/api/v1/admin/requests/{id}/approve"),
    ("POST", "/api/v1/admin/requests/{id}/reject"),
    ("POST", "/api/v1/admin/requests/{id}/retry"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
];
