//! The admin API (`/_admin/…`): health and metrics, classes (deploy, describe, WIT, ids),
//! components and project deploys.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::{Gateway, decode, json_response};
use crate::error::ObjectError;

impl Gateway {
    /// Makes a deploy (see `replicate.rs`) and answers with its outcome.
    async fn answer_change(
        &self,
        kind: &str,
        target: String,
        body: Vec<u8>,
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        let change = crate::cluster::store::Change {
            kind: kind.to_owned(),
            target,
            body,
        };
        let (status, reply) = self.change(change).await?;
        Ok(json_response(status, &reply))
    }

    /// `/_admin/{rest…}`.
    pub(super) async fn admin(
        &self,
        req: Request<Incoming>,
        rest: &[&str],
    ) -> Result<Response<Full<Bytes>>, ObjectError> {
        match (req.method(), rest) {
            (&Method::GET, ["health"]) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "live_objects": self.directory.live_objects(),
                    "classes": self.runtime.registry.list().len(),
                }),
            )),
            (&Method::GET, ["cluster"]) => {
                let Some(cluster) = &self.cluster else {
                    return Err(ObjectError::NotFound(
                        "this host is not in a cluster (no `[cluster]` in its config)".into(),
                    ));
                };
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({
                        "host": cluster.me.host,
                        "incarnation": cluster.me.number,
                        "url": cluster.url,
                        "lease_ms": cluster.lease.as_millis() as u64,
                        "owned_objects": cluster.owned(),
                        "hosts": cluster.hosts(),
                    }),
                ))
            }
            (&Method::GET, ["cluster", "objects", class, name]) => {
                let Some(cluster) = &self.cluster else {
                    return Err(ObjectError::NotFound(
                        "this host is not in a cluster (no `[cluster]` in its config)".into(),
                    ));
                };
                let class = decode(class)?;
                let address = super::object_name(name)?;
                let (key, _) = self.router.resolve(&class, &address)?;
                let found = cluster.owner(&key, &self.runtime).await?;
                Ok(json_response(StatusCode::OK, &found))
            }
            (&Method::GET, ["metrics"]) => {
                let text = self.runtime.metrics.render(
                    self.directory.live_objects(),
                    self.runtime.open_databases(),
                    self.runtime.registry.list().len(),
                    self.runtime.schedule.pending(),
                    self.runtime.websockets.open(),
                );
                Ok(Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .expect("valid response"))
            }
            (&Method::GET, ["classes"]) => {
                let all: Vec<_> = self
                    .runtime
                    .registry
                    .list()
                    .iter()
                    .map(|c| c.describe())
                    .collect();
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::Value::Array(all),
                ))
            }
            (&Method::GET, ["classes", class]) => {
                let class = decode(class)?;
                let version = self.runtime.registry.deployed(&class)?;
                Ok(json_response(StatusCode::OK, &version.describe()))
            }
            (&Method::GET, ["classes", class, "wit"]) => {
                let class = decode(class)?;
                let wit = self.runtime.registry.wit(&class).await?;
                Ok(Response::builder()
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from(wit)))
                    .expect("valid response"))
            }
            (&Method::GET, ["classes", class, "id-from-name", name]) => {
                let (class, name) = (decode(class)?, decode(name)?);
                let id = self.router.id_from_name(&class, &name)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex(), "name": name }),
                ))
            }
            (&Method::POST, ["classes", class, "new-unique-id"]) => {
                let class = decode(class)?;
                let id = self.router.new_unique_id(&class)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex() }),
                ))
            }
            (&Method::GET, ["classes", class, "id-from-string", id]) => {
                let (class, id) = (decode(class)?, decode(id)?);
                let id = self.router.id_from_string(&class, &id)?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "id": id.to_hex() }),
                ))
            }
            (&Method::PUT, ["classes", class]) => {
                let class = decode(class)?;
                let limit = self.runtime.limits.max_component_bytes;
                let bytes = self.read_body(req.into_body(), limit).await?;
                self.answer_change("class", class, bytes.to_vec()).await
            }
            (&Method::PUT, ["components"]) => {
                let limit = self.runtime.limits.max_component_bytes;
                let bytes = self.read_body(req.into_body(), limit).await?;
                self.answer_change("component", String::new(), bytes.to_vec())
                    .await
            }
            (&Method::GET, ["components"]) => Ok(json_response(
                StatusCode::OK,
                &serde_json::Value::Array(self.runtime.registry.components()?),
            )),
            (&Method::DELETE, ["components", hash]) => {
                let hash = decode(hash)?;
                self.answer_change("delete-component", hash, Vec::new())
                    .await
            }
            (&Method::PUT, ["projects", project]) => {
                let project = decode(project)?;
                let limit = self.runtime.limits.max_body_bytes;
                let body = self.read_body(req.into_body(), limit).await?;
                // refused before it is recorded: a manifest that is not even JSON
                serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| {
                    ObjectError::InvalidManifest(format!("the manifest is not valid: {e}"))
                })?;
                self.answer_change("project", project, body.to_vec()).await
            }
            (&Method::GET, ["projects"]) => Ok(json_response(
                StatusCode::OK,
                &self.projects.describe(None).await?,
            )),
            (&Method::GET, ["projects", project]) => {
                let project = decode(project)?;
                let described = self.projects.describe(Some(&project)).await?;
                Ok(json_response(StatusCode::OK, &described))
            }
            _ => Err(ObjectError::NotFound(format!(
                "no admin route for {} {}: see the routes in the README",
                req.method(),
                req.uri().path()
            ))),
        }
    }
}
