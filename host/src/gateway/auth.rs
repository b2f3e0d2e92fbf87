//! Who may use the control plane. Two scopes, each a bearer token (`Authorization: Bearer …`):
//! **admin** (deploys, components, projects, metrics, and everything `call` allows) and **call**
//! (`/rpc`, `/objects`, reading classes and ids). Without an admin token configured the control
//! plane is open — `Config::check_planes` allows that only on loopback.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time, so neither a token's length
//! nor its prefix leaks through response timing; they are never logged.

use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::Token;
use crate::error::ObjectError;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Anyone (health, the entry Worker).
    Open,
    /// The call token or the admin token.
    Call,
    /// The admin token.
    Admin,
}

/// The configured tokens, as digests.
pub(crate) struct Credentials {
    admin: Option<[u8; 32]>,
    call: Option<[u8; 32]>,
}

impl Credentials {
    pub(crate) fn new(admin: Option<&Token>, call: Option<&Token>) -> Credentials {
        let digest = |t: &Token| Sha256::digest(t.expose().as_bytes()).into();
        Credentials {
            admin: admin.map(digest),
            call: call.map(digest),
        }
    }

    /// Whether the request's credential covers `scope`: `Unauthorized` without a valid token,
    /// `Forbidden` with a call token on an admin route.
    pub(crate) fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<(), ObjectError> {
        let Some(admin) = &self.admin else {
            return Ok(()); // an open control plane (loopback only)
        };
        if scope == Scope::Open {
            return Ok(());
        }
        let presented = bearer(headers).ok_or_else(|| {
            ObjectError::Unauthorized(
                "this route needs a token: send `Authorization: Bearer <token>` (the host's admin-token or call-token; `wasmdo` commands read WASMDO_ADMIN_TOKEN / WASMDO_CALL_TOKEN)".into(),
            )
        })?;
        let presented: [u8; 32] = Sha256::digest(presented).into();
        // both comparisons always run: which token matched does not show in the timing
        let is_admin = same(&presented, admin);
        let is_call = self
            .call
            .as_ref()
            .is_some_and(|call| same(&presented, call));
        match (is_admin, is_call, scope) {
            (true, _, _) | (false, true, Scope::Call) => Ok(()),
            (false, true, _) => Err(ObjectError::Forbidden(
                "the call token may call objects and read classes; this route needs the admin token".into(),
            )),
            (false, false, _) => Err(ObjectError::Unauthorized(
                "the token is not valid for this host".into(),
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    let token = token.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

/// Constant-time equality of two digests.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert(hyper::header::AUTHORIZATION, auth.parse().unwrap());
        }
        headers
    }

    fn kind(result: Result<(), ObjectError>) -> String {
        result.map_or_else(|e| e.kind().to_owned(), |()| "ok".to_owned())
    }

    #[test]
    fn scopes() {
        let admin = Token::new("admin-0123456789abcdef");
        let call = Token::new("call-0123456789abcdef");
        let creds = Credentials::new(Some(&admin), Some(&call));
        let admin_h = headers(Some("Bearer admin-0123456789abcdef"));
        let call_h = headers(Some("bearer  call-0123456789abcdef "));
        let wrong = headers(Some("Bearer admin-0123456789abcdeX"));
        let basic = headers(Some("Basic YWRtaW46YWRtaW4="));
        assert_eq!(kind(creds.check(&admin_h, Scope::Admin)), "ok");
        assert_eq!(kind(creds.check(&admin_h, Scope::Call)), "ok");
        assert_eq!(kind(creds.check(&call_h, Scope::Call)), "ok");
        assert_eq!(kind(creds.check(&call_h, Scope::Admin)), "Forbidden");
        assert_eq!(kind(creds.check(&wrong, Scope::Call)), "Unauthorized");
        assert_eq!(kind(creds.check(&basic, Scope::Call)), "Unauthorized");
        assert_eq!(
            kind(creds.check(&headers(None), Scope::Call)),
            "Unauthorized"
        );
        assert_eq!(kind(creds.check(&headers(None), Scope::Open)), "ok");
        let open = Credentials::new(None, None);
        assert_eq!(kind(open.check(&headers(None), Scope::Admin)), "ok");
    }
}
