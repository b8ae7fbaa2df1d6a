package deploy

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/kube-sentinel/sentinel/config"
	"github.com/kube-sentinel/sentinel/internal/testcerts"
	"github.com/kube-sentinel/sentinel/internal/tlsreload"
)

// certificate and issuer are the fields of cert-manager's Certificate and
// Issuer (cert-manager.io/v1) that the manifests use, decoded strictly:
// a field cert-manager does not have (or one these structs have not been
// told of) fails the build, without importing cert-manager's module.
type certificate struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName,omitempty"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		IsCA        bool     `json:"isCA,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		Usages      []string `json:"usages,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

type issuer struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

func (o *objects) certManagerTarget(t *testing.T, apiVersion, kind string) any {
	t.Helper()
	if apiVersion != "cert-manager.io/v1" {
		t.Fatalf("%s of apiVersion %s: want cert-manager.io/v1", kind, apiVersion)
	}
	if kind == "Certificate" {
		o.certificates = append(o.certificates, certificate{})
		return &o.certificates[len(o.certificates)-1]
	}
	o.issuers = append(o.issuers, issuer{})
	return &o.issuers[len(o.issuers)-1]
}

// certificateFor is the Certificate that writes Secret secret, checked to
// come from the CA issuer whose CA a self-signed issuer made.
func (o *objects) certificateFor(t *testing.T, secret string) *certificate {
	t.Helper()
	var c *certificate
	for i := range o.certificates {
		if o.certificates[i].Spec.SecretName == secret {
			c = &o.certificates[i]
		}
	}
	if c == nil {
		t.Fatalf("no Certificate writes Secret %s", secret)
	}
	iss := o.issuer(t, c.Spec.IssuerRef.Name)
	if c.Spec.IssuerRef.Kind != "Issuer" || c.Spec.IssuerRef.Group != "cert-manager.io" || iss.Spec.CA == nil {
		t.Fatalf("Certificate %s: issuer %+v is not a CA Issuer", c.Metadata.Name, c.Spec.IssuerRef)
	}
	var ca *certificate
	for i := range o.certificates {
		if o.certificates[i].Spec.SecretName == iss.Spec.CA.SecretName {
			ca = &o.certificates[i]
		}
	}
	if ca == nil || !ca.Spec.IsCA || o.issuer(t, ca.Spec.IssuerRef.Name).Spec.SelfSigned == nil {
		t.Fatalf("Issuer %s: its CA Secret %s is not a self-signed CA Certificate's", iss.Metadata.Name, iss.Spec.CA.SecretName)
	}
	if c.Spec.IsCA || c.Spec.PrivateKey == nil || c.Spec.PrivateKey.RotationPolicy != "Always" {
		t.Errorf("Certificate %s: a leaf with a key rotated at every renewal, got %+v", c.Metadata.Name, c.Spec)
	}
	return c
}

func (o *objects) issuer(t *testing.T, name string) *issuer {
	t.Helper()
	for i := range o.issuers {
		if o.issuers[i].Metadata.Name == name {
			return &o.issuers[i]
		}
	}
	t.Fatalf("no Issuer %s", name)
	return nil
}

// secretMount is where container c mounts Secret secret of pod, "" when
// it does not.
func secretMount(pod corev1.PodSpec, c corev1.Container, secret string) string {
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name && m.SubPath == "" {
				return m.MountPath
			}
		}
	}
	return ""
}

// otlpMount is where sentinel's container mounts its OTLP certificate.
const otlpMount = "/etc/sentinel/otlp-tls"

// withOTLPCerts checks that sentinel mounts the Secret sentinel-otlp-tls
// and returns the config text with that mount replaced by a directory
// holding certificates made here, under the keys cert-manager writes
// (tls.crt, tls.key, ca.crt), so that sentinel's parser, which loads the
// files, can take it.
func withOTLPCerts(t *testing.T, pod corev1.PodSpec, c corev1.Container, cfgText string) (string, string) {
	t.Helper()
	if mount := secretMount(pod, c, "sentinel-otlp-tls"); mount != otlpMount {
		t.Fatalf("sentinel mounts the Secret sentinel-otlp-tls at %q, want %s (and without subPath, so that renewals reach it)", mount, otlpMount)
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	pair := ca.Server(t, "sentinel")
	testcerts.WriteFile(t, filepath.Join(dir, "tls.crt"), pair.CertPEM)
	testcerts.WriteFile(t, filepath.Join(dir, "tls.key"), pair.KeyPEM)
	testcerts.WriteFile(t, filepath.Join(dir, "ca.crt"), ca.CertPEM)
	return strings.ReplaceAll(cfgText, otlpMount+"/", dir+"/"), dir
}

// checkSentinelTLS: both OTLP transports require client certificates by
// default; cert_file, key_file and client_ca_file are the mounted Secret's
// tls.crt, tls.key and ca.crt (certDir stands in for the mount); and that
// Secret is a server certificate of the CA issuer for the Service's names.
func checkSentinelTLS(t *testing.T, o *objects, cfg *config.Config, dir string) {
	t.Helper()
	cert := o.certificateFor(t, "sentinel-otlp-tls")
	if !slices.Contains(cert.Spec.Usages, "server auth") || slices.Contains(cert.Spec.Usages, "client auth") {
		t.Errorf("sentinel's certificate usages %v: server auth only, so that it cannot serve as a client's", cert.Spec.Usages)
	}
	svc := o.service(t, "sentinel")
	if want := svc.Name + "." + svc.Namespace + ".svc"; !slices.Contains(cert.Spec.DNSNames, want) {
		t.Errorf("sentinel's certificate names %v lack %s, the Collectors' endpoint", cert.Spec.DNSNames, want)
	}
	mount := otlpMount
	for name, tls := range map[string]*tlsFiles{"otlp.grpc.tls": cfg.OTLPGRPCTLS, "otlp.http.tls": cfg.OTLPHTTPTLS} {
		if tls == nil {
			t.Errorf("%s is off: the shipped config requires client certificates", name)
			continue
		}
		if tls.CertFile != filepath.Join(dir, "tls.crt") || tls.KeyFile != filepath.Join(dir, "tls.key") || tls.ClientCAFile != filepath.Join(dir, "ca.crt") {
			t.Errorf("%s = %+v: want tls.crt, tls.key and client_ca_file ca.crt of the Secret mounted at %s", name, *tls, mount)
		}
	}

	// No pod selected only by its namespace reaches the OTLP ports.
	for _, np := range o.netpols {
		for _, r := range np.Spec.Ingress {
			otlp := false
			for _, p := range r.Ports {
				otlp = otlp || p.Port.IntValue() == 4317 || p.Port.IntValue() == 4318
			}
			for _, peer := range r.From {
				if otlp && peer.NamespaceSelector != nil && peer.PodSelector == nil {
					t.Errorf("NetworkPolicy %s admits every pod of namespaces %v to the OTLP ports", np.Name, peer.NamespaceSelector.MatchLabels)
				}
			}
		}
	}
}

type tlsFiles = tlsreload.Files

// collectorTLS is the part of the Collector's configtls settings the
// manifests use.
type collectorTLS struct {
	Insecure           bool   `json:"insecure"`
	CAFile             string `json:"ca_file"`
	CertFile           string `json:"cert_file"`
	KeyFile            string `json:"key_file"`
	ClientCAFile       string `json:"client_ca_file"`
	ServerNameOverride string `json:"server_name_override"`
	ReloadInterval     string `json:"reload_interval"`
}

// checkCollectorClient: a Collector exporter's tls presents the client
// certificate of Secret secret, mounted in the Collector's container, and
// verifies sentinel's against the CA of that Secret.
func checkCollectorClient(t *testing.T, o *objects, what string, tls *collectorTLS, pod corev1.PodSpec, secret string) {
	t.Helper()
	if tls == nil || tls.Insecure {
		t.Fatalf("%s: tls %+v: mutual TLS is the default", what, tls)
	}
	mount := secretMount(pod, pod.Containers[0], secret)
	if mount == "" {
		t.Fatalf("%s: the Collector does not mount Secret %s", what, secret)
	}
	want := collectorTLS{CAFile: path.Join(mount, "ca.crt"), CertFile: path.Join(mount, "tls.crt"), KeyFile: path.Join(mount, "tls.key")}
	if tls.CAFile != want.CAFile || tls.CertFile != want.CertFile || tls.KeyFile != want.KeyFile {
		t.Errorf("%s: tls %+v, want the files of %s: %+v", what, *tls, mount, want)
	}
	if tls.ReloadInterval == "" {
		t.Errorf("%s: no reload_interval: the Collector would keep an expired certificate", what)
	}
	cert := o.certificateFor(t, secret)
	if !slices.Contains(cert.Spec.Usages, "client auth") {
		t.Errorf("%s: certificate usages %v lack client auth", what, cert.Spec.Usages)
	}
	if ca := o.certificateFor(t, "sentinel-otlp-tls").Spec.IssuerRef; cert.Spec.IssuerRef != ca {
		t.Errorf("%s: issued by %+v, sentinel trusts %+v", what, cert.Spec.IssuerRef, ca)
	}
}

// TestTracingMutualTLS: the node-local Collector sends to sentinel with
// its client certificate.
func TestTracingMutualTLS(t *testing.T) {
	// The Collector's Certificate names the base's issuer: build both.
	base, tracing := build(t, filesys.MakeFsOnDisk(), "."), build(t, filesys.MakeFsOnDisk(), "tracing")
	o := &objects{certificates: append(base.certificates, tracing.certificates...), issuers: base.issuers, services: base.services}
	var cfg struct {
		Exporters map[string]struct {
			TLS *collectorTLS `json:"tls"`
		} `json:"exporters"`
	}
	if err := yaml.Unmarshal([]byte(tracing.configMap(t, "control-plane-collector").Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	checkCollectorClient(t, o, "otlp/sentinel", cfg.Exporters["otlp/sentinel"].TLS, tracing.daemonSets[0].Spec.Template.Spec, "sentinel-otlp-client-tls")
}

// TestHAMutualTLS: the HA Collector requires the node-local Collectors'
// client certificates and presents its own to the replicas, checking
// theirs against the Service name (it dials pod addresses).
func TestHAMutualTLS(t *testing.T) {
	checkHAMutualTLS(t, build(t, withHA(t), "/deploy"))
}

func checkHAMutualTLS(t *testing.T, o *objects) {
	t.Helper()
	var cfg struct {
		Receivers struct {
			OTLP struct {
				Protocols map[string]struct {
					TLS *collectorTLS `json:"tls"`
				} `json:"protocols"`
			} `json:"otlp"`
		} `json:"receivers"`
		Exporters map[string]struct {
			Protocol struct {
				OTLP struct {
					TLS *collectorTLS `json:"tls"`
				} `json:"otlp"`
			} `json:"protocol"`
		} `json:"exporters"`
	}
	if err := yaml.Unmarshal([]byte(o.configMap(t, "sentinel-collector").Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	pod := o.deployment(t, "sentinel-collector").Spec.Template.Spec
	lb := cfg.Exporters["loadbalancing/sentinel"].Protocol.OTLP.TLS
	checkCollectorClient(t, o, "loadbalancing/sentinel", lb, pod, "sentinel-collector-tls")
	if lb != nil && !slices.Contains(o.certificateFor(t, "sentinel-otlp-tls").Spec.DNSNames, lb.ServerNameOverride) {
		t.Errorf("loadbalancing/sentinel: server_name_override %q is not a name of sentinel's certificate", lb.ServerNameOverride)
	}
	mount := secretMount(pod, pod.Containers[0], "sentinel-collector-tls")
	for proto, r := range cfg.Receivers.OTLP.Protocols {
		if r.TLS == nil || r.TLS.ClientCAFile != path.Join(mount, "ca.crt") || r.TLS.CertFile != path.Join(mount, "tls.crt") {
			t.Errorf("HA Collector's %s receiver tls %+v: want its certificate and client certificates of sentinel's CA", proto, r.TLS)
		}
	}
	if cert := o.certificateFor(t, "sentinel-collector-tls"); !slices.Contains(cert.Spec.DNSNames, "sentinel-collector.monitoring.svc") ||
		!slices.Contains(cert.Spec.Usages, "server auth") {
		t.Errorf("HA Collector's certificate %+v does not serve sentinel-collector.monitoring.svc", cert.Spec)
	}
}
