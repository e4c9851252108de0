//! `certgen`: the one-shot Job that makes the peer CA Secret the replicas
//! mount (`--peer-ca-dir`), run with its own service account, which may
//! only create Secrets; the replicas' may not touch Secrets. Creates the
//! Secret when it does not exist; run with rights to read it, checks an
//! existing one (and fails, naming the Secret and the cause, when it is not
//! usable); with `--rotate` (an operator's rights) replaces the CA by a new
//! one that the replicas switch to without a restart. The logic lives in
//! `peer::credentials::bootstrap`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use apimachinery::GoDuration;

use crate::config::parse_secret_ref;
use crate::peer::credentials::bootstrap;

/// The longest `--overlap`: both phases together stay within the replicas'
/// bound on a rotation (`authority::MAX_OVERLAP`).
const MAX_OVERLAP: Duration = Duration::from_secs(12 * 3_600);

/// Options of `certgen`.
#[derive(Debug, Args)]
pub struct CertgenArgs {
    /// The peer CA Secret: `NAMESPACE/NAME`, or `NAME` in --namespace.
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    pub secret: String,
    /// The namespace of a --secret given without one.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub namespace: String,
    /// A kubeconfig; default: the in-cluster service account (or $KUBECONFIG).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Replace the CA by a new one (the Secret must hold a usable CA). The
    /// replicas trust the new CA as soon as their kubelet updates the
    /// mounted Secret, present certificates from it one --overlap later,
    /// and stop trusting the old CA one --overlap after that.
    #[arg(long)]
    pub rotate: bool,
    /// Each phase of a rotation. Must cover the time the kubelet takes to
    /// update a mounted Secret (its sync period plus its cache TTL, about
    /// 2 minutes by default) and --peer-reload-interval.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub overlap: GoDuration,
}

/// Runs the Job.
pub async fn certgen(args: CertgenArgs) -> anyhow::Result<()> {
    let secret = parse_secret_ref("--secret", &args.secret, &args.namespace).map_err(|e| anyhow::anyhow!("{e}"))?;
    let overlap = args.overlap.0;
    anyhow::ensure!(
        (Duration::from_secs(1)..=MAX_OVERLAP).contains(&overlap),
        "--overlap {overlap:?} must be between 1s and {MAX_OVERLAP:?}"
    );
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}: cannot read it", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("--kubeconfig {}: not a usable kubeconfig", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig given and neither in-cluster credentials nor $KUBECONFIG were usable")?,
    };
    let client = crate::kube_client::client(config).context("building the Kubernetes client")?;
    let me = std::env::var("POD_NAME").map(|pod| format!("certgen {pod}")).unwrap_or_else(|_| "certgen".into());
    if args.rotate {
        let (set, schedule) = bootstrap::rotate(client, &secret, &me, overlap).await?;
        let at = |s: i64| apimachinery::format::format_time(s * 1_000_000_000);
        tracing::info!(
            %secret,
            ca = %set.cert.name,
            switch_at = %at(schedule.switch_at),
            retire_at = %at(schedule.retire_at),
            "rotated the peer CA: replicas present certificates from the new CA from switch_at and stop \
             trusting the old one at retire_at"
        );
    } else {
        match bootstrap::ensure(client, &secret, &me).await? {
            bootstrap::Ensured::Created(set) => {
                tracing::info!(%secret, ca = %set.cert.name, "created the peer CA Secret")
            }
            bootstrap::Ensured::Checked(set) => {
                tracing::info!(%secret, ca = %set.cert.name, "the peer CA Secret exists and is usable")
            }
            bootstrap::Ensured::Exists => tracing::info!(
                %secret,
                "the peer CA Secret exists (not read: this service account may only create it; the replicas \
                 check it when they mount it)"
            ),
        }
    }
    Ok(())
}
