//! Spans, metrics and logs reach an OTLP receiver over TLS, with a CA made in the test: mutual TLS
//! over gRPC and over HTTP, with the CA and the client identity from `OTEL_EXPORTER_OTLP_*`
//! files. A receiver whose certificate the service cannot trust gets nothing, and the service
//! still runs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use otlp_sink::{SinkTls, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in a fresh
/// directory.
struct Pki {
    dir: PathBuf,
    ca: String,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |san: SanType, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.subject_alt_names = vec![san];
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            SanType::IpAddress([127, 0, 0, 1].into()),
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            SanType::DnsName("telemetry-test".try_into().expect("name")),
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let dir = std::env::temp_dir().join(format!(
            "shopmax-tls-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (file, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(file), pem).expect("write pem");
        }
        Self {
            dir,
            ca: ca_cert.pem(),
            server_cert,
            server_key,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// The receiver's TLS: its certificate, and client certificates required from our CA.
    fn mutual(&self) -> SinkTls {
        SinkTls {
            cert_pem: self.server_cert.clone().into_bytes(),
            key_pem: self.server_key.clone().into_bytes(),
            client_ca_pem: Some(self.ca.clone().into_bytes()),
        }
    }

    /// The exporter settings that trust our CA and present the client certificate.
    fn exporter_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", self.path("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                self.path("client.pem"),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", self.path("client.key")),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

#[test]
fn signals_reach_a_grpc_receiver_over_mutual_tls_with_a_ca_from_the_environment() {
    let pki = Pki::new("grpc");
    let env = test_harness::TestEnv::start_tls(common::SERVICE, pki.mutual(), |sink| {
        let mut vars = pki.exporter_vars();
        vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()));
        common::vars(&vars)
    });
    assert!(env.sink.grpc_endpoint().starts_with("https://"));
    common::assert_signals_arrive(&env, Transport::Grpc);
}

#[test]
fn signals_reach_an_http_receiver_over_mutual_tls_with_a_ca_from_the_environment() {
    let pki = Pki::new("http");
    let env = test_harness::TestEnv::start_tls(common::SERVICE, pki.mutual(), |sink| {
        let mut vars = pki.exporter_vars();
        vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint()));
        vars.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()));
        common::vars(&vars)
    });
    assert!(env.sink.http_endpoint().starts_with("https://"));
    common::assert_signals_arrive(&env, Transport::HttpProtobuf);
}

#[test]
fn an_untrusted_receiver_certificate_gets_nothing_and_the_service_runs_on() {
    let pki = Pki::new("untrusted");
    // The receiver's certificate chains to a CA the exporter was not told to trust.
    let env = test_harness::TestEnv::start_tls(common::SERVICE, pki.mutual(), |sink| {
        common::vars(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", sink.grpc_endpoint()),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            ("OTEL_LOGS_EXPORTER", "none".into()),
        ])
    });
    let stats = env.guard.span_stats();
    env.rt.block_on(async {
        let addr = common::serve(common::work_router()).await;
        let client = reqwest::Client::new();
        let answered = common::latencies(&client, &format!("http://{addr}/work"), 20).await;
        assert_eq!(answered.len(), 20, "the service answers while export fails");
        assert!(
            env.sink
                .wait_until(common::WAIT, |_| stats
                    .export_failed
                    .load(Ordering::Relaxed)
                    > 0)
                .await,
            "the failed handshake is counted as a failed export"
        );
    });
    assert_eq!(env.sink.received().traces.len(), 0);
}
