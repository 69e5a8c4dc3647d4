//! Building a Kubernetes client from the directive's `kubeconfig PATH [CONTEXT]`, or from the
//! environment when it is absent.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client for one cluster.
///
/// - `Some((path, context))`: the kubeconfig file at `path`, using `context` (default: the
///   file's `current-context`).
/// - `None`: the in-cluster service account first (`KUBERNETES_SERVICE_HOST`/`_PORT` and
///   `/var/run/secrets/kubernetes.io/serviceaccount/`), then `$KUBECONFIG` or
///   `~/.kube/config` with its current context.
///
/// Nothing is contacted here: a wrong server address shows up as watch errors later.
pub async fn client(kubeconfig: Option<(PathBuf, Option<String>)>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some((path, context)) => {
            let file = Kubeconfig::read_from(&path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            let options = KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| match &context {
                    Some(c) => format!("kubeconfig {} (context {c}): {e}", path.display()),
                    None => format!("kubeconfig {}: {e}", path.display()),
                })?
        }
        None => match kube::Config::incluster() {
            Ok(config) => config,
            Err(in_cluster) => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
                .await
                .map_err(|kubeconfig| {
                    format!(
                        "no Kubernetes configuration: not running in a cluster ({in_cluster}) \
                         and no usable kubeconfig ({kubeconfig})"
                    )
                })?,
        },
    };
    kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: first
clusters:
- name: one
  cluster:
    server: http://127.0.0.1:1
- name: two
  cluster:
    server: http://127.0.0.1:2
users:
- name: me
  user:
    token: abc
contexts:
- name: first
  context:
    cluster: one
    user: me
    namespace: ns-first
- name: second
  context:
    cluster: two
    user: me
    namespace: ns-second
"#;

    fn kubeconfig_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), TWO_CONTEXTS).unwrap();
        f
    }

    #[tokio::test]
    async fn kubeconfig_uses_its_current_context_by_default() {
        let f = kubeconfig_file();
        let c = client(Some((f.path().to_path_buf(), None))).await.unwrap();
        assert_eq!(c.default_namespace(), "ns-first");
    }

    #[tokio::test]
    async fn kubeconfig_context_is_selectable() {
        let f = kubeconfig_file();
        let c = client(Some((f.path().to_path_buf(), Some("second".into()))))
            .await
            .unwrap();
        assert_eq!(c.default_namespace(), "ns-second");
    }

    #[tokio::test]
    async fn unknown_context_is_an_error_naming_it() {
        let f = kubeconfig_file();
        let err = client(Some((f.path().to_path_buf(), Some("third".into()))))
            .await
            .err()
            .expect("an unknown context is an error");
        let want = format!("kubeconfig {} (context third): ", f.path().display());
        assert!(err.starts_with(&want), "{err}");
        assert!(err.contains("third"), "{err}");
    }

    #[tokio::test]
    async fn missing_kubeconfig_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.yaml");
        let err = client(Some((path.clone(), None)))
            .await
            .err()
            .expect("a missing file is an error");
        assert!(
            err.starts_with(&format!("kubeconfig {}: ", path.display())),
            "{err}"
        );
    }
}
