package scrape

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"

	promconfig "github.com/prometheus/common/config"

	"github.com/kube-sentinel/sentinel/config"
)

// In-cluster service account, as client-go's rest.InClusterConfig reads it.
const (
	serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	serviceAccountCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// maxListBytes bounds one list response: 5000 nodes are about 50 MiB.
const maxListBytes = 128 << 20

// discoverer lists a role's objects with plain REST calls. A periodic list
// (no watch) is enough: nodes and the apiserver's endpoints change in
// minutes, not seconds, and a missed scrape is harmless.
type discoverer struct {
	cfg    config.KubernetesSDConfig
	base   *url.URL
	client *http.Client
}

func newDiscoverer(cfg config.KubernetesSDConfig, job string) (*discoverer, error) {
	server, hc := cfg.APIServer, cfg.HTTPClientConfig
	if server == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("no api_server and not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)")
		}
		server = "https://" + net.JoinHostPort(host, port)
		hc = promconfig.DefaultHTTPClientConfig
		// The token file is read at every request: the kubelet rotates
		// projected service account tokens.
		hc.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: serviceAccountToken}
		hc.TLSConfig = promconfig.TLSConfig{CAFile: serviceAccountCA}
	}
	base, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("api server %q: %w", server, err)
	}
	client, err := promconfig.NewClientFromConfig(hc, job+"_kubernetes_sd")
	if err != nil {
		return nil, fmt.Errorf("api server client: %w", err)
	}
	return &discoverer{cfg: cfg, base: base, client: client}, nil
}

func (d *discoverer) refresh(ctx context.Context) ([]targetSpec, error) {
	switch d.cfg.Role {
	case config.RoleNode:
		var list nodeList
		if err := d.list(ctx, "/api/v1/nodes", nil, &list); err != nil {
			return nil, err
		}
		return nodeTargets(list), nil
	case config.RoleEndpoints:
		// Lists only, never a GET of one object: the ClusterRole grants
		// list and watch on endpoints, not get. Without namespaces, the
		// apiserver's own Endpoints (default/kubernetes) are listed by a
		// field selector.
		namespaces, query := d.cfg.Namespaces, url.Values(nil)
		if len(namespaces) == 0 {
			namespaces, query = []string{"default"}, url.Values{"fieldSelector": {"metadata.name=kubernetes"}}
		}
		var all []endpoints
		for _, ns := range namespaces {
			var list endpointsList
			if err := d.list(ctx, "/api/v1/namespaces/"+url.PathEscape(ns)+"/endpoints", query, &list); err != nil {
				return nil, err
			}
			for i := range list.Items {
				if list.Items[i].Metadata.Namespace == "" {
					list.Items[i].Metadata.Namespace = ns
				}
			}
			all = append(all, list.Items...)
		}
		return endpointsTargets(all), nil
	}
	return nil, fmt.Errorf("role %q is not supported", d.cfg.Role)
}

// list GETs a collection (the list verb), with query parameters.
func (d *discoverer) list(ctx context.Context, path string, query url.Values, v any) error {
	u := d.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, msg)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBytes)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", u, err)
	}
	return nil
}

// The few fields of core/v1 Node and Endpoints that discovery reads.
type (
	objectMeta struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	}
	nodeList struct {
		Items []node `json:"items"`
	}
	node struct {
		Metadata objectMeta `json:"metadata"`
		Status   struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
			DaemonEndpoints struct {
				KubeletEndpoint struct {
					Port int `json:"Port"`
				} `json:"kubeletEndpoint"`
			} `json:"daemonEndpoints"`
		} `json:"status"`
	}
	endpointsList struct {
		Items []endpoints `json:"items"`
	}
	endpoints struct {
		Metadata objectMeta `json:"metadata"`
		Subsets  []struct {
			Addresses []struct {
				IP       string `json:"ip"`
				NodeName string `json:"nodeName"`
			} `json:"addresses"`
			Ports []struct {
				Name     string `json:"name"`
				Port     int    `json:"port"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
		} `json:"subsets"`
	}
)

// nodeAddressOrder is Prometheus's: the first address type a node has wins.
var nodeAddressOrder = []string{"InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "Hostname"}

// nodeTargets gives a kubelet target per node, at its preferred address
// and kubelet port (10250 when the node does not say), labelled node=NAME
// (Prometheus's __meta_kubernetes_node_name, as the usual relabeling does).
func nodeTargets(list nodeList) []targetSpec {
	var out []targetSpec
	for _, n := range list.Items {
		addr := ""
		for _, typ := range nodeAddressOrder {
			for _, a := range n.Status.Addresses {
				if a.Type == typ && a.Address != "" && addr == "" {
					addr = a.Address
				}
			}
		}
		if addr == "" {
			continue
		}
		port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
		if port == 0 {
			port = 10250
		}
		out = append(out, targetSpec{
			address: net.JoinHostPort(addr, strconv.Itoa(port)),
			labels:  map[string]string{"node": n.Metadata.Name},
		})
	}
	return out
}

// endpointsTargets gives a target per ready address and TCP port,
// labelled namespace and service (the Endpoints' name), plus node when the
// address names one.
func endpointsTargets(list []endpoints) []targetSpec {
	var out []targetSpec
	for _, ep := range list {
		ns := ep.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		for _, ss := range ep.Subsets {
			for _, a := range ss.Addresses {
				for _, p := range ss.Ports {
					if (p.Protocol != "" && p.Protocol != "TCP") || a.IP == "" || p.Port == 0 {
						continue
					}
					l := map[string]string{"namespace": ns, "service": ep.Metadata.Name}
					if a.NodeName != "" {
						l["node"] = a.NodeName
					}
					out = append(out, targetSpec{address: net.JoinHostPort(a.IP, strconv.Itoa(p.Port)), labels: l})
				}
			}
		}
	}
	return out
}
