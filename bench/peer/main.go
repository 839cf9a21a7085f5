// acrpool-peer: a minimal AgentPool operator written the usual way, in Go
// with sigs.k8s.io/controller-runtime, for bench/scale.py to measure
// acrpool-controller against. It is bench-only and never part of the
// product: it exists so that "how much does the C operator cost" has a
// like-for-like answer on the same API server, emulator and workload.
//
// What it is, kubebuilder style: one manager (leader election off), one
// controller named "agentpool" with For(AgentPool), 4 workers
// (MaxConcurrentReconciles), GenerationChangedPredicate as the event filter
// (so its own status and finalizer writes do not bring the object back),
// a Watches(Registry) that enqueues the pools naming a Registry (through a
// field index), small typed API structs, controller-runtime's cached client
// and its default client-side rate limit (none: GetConfig sets QPS -1 and
// leaves throttling to API Priority and Fairness; acrpool-controller has no
// client-side limit either).
//
// One reconcile: read the AgentPool, its Registry and the Registry's
// service principal Secret from the cache; get an ARM token from the
// authority's token endpoint (client credentials, cached until 5 minutes
// before it expires); read the registry's location from ARM once per
// registry; add the finalizer with an Update; PUT the pool (the request
// acrpool-controller sends: api-version 2019-06-01-preview, body location
// and properties tier, os, count); if the answer says Succeeded, Ready=True;
// if the pool is still in flight, RequeueAfter (Retry-After or 5 s) and GET
// it on the next pass until it is done. The status is written with
// Status().Update only when it changed. Deletion: DELETE in Azure, requeue
// while Azure says 202, then remove the finalizer.
//
// Flags mirror acrpool-controller's where they mean the same: --kubeconfig
// (controller-runtime's own), --namespace, --arm-endpoint, --authority-host,
// --metrics-bind-address, --health-probe-bind-address, --workers,
// --resync-period (the cache's SyncPeriod). An https ARM endpoint is trusted
// through the system pool, which Go extends with SSL_CERT_FILE.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

const (
	finalizer          = "acrpool.dev/finalizer"
	poolAPIVersion     = "2019-06-01-preview" // reconcilers/azure/arm.h ARM_API_VERSION
	registryAPIVersion = "2023-07-01"         // ARM_API_VERSION_REGISTRIES
	armScope           = "https://management.azure.com/.default"
	defaultPoll        = 5 * time.Second
	registryRefIndex   = "spec.registryRef.name"
)

// ---- API types: the fields of the acrpool.dev/v1alpha1 CRDs the peer
// reads. countSchedule and autoscale are kept raw so that an Update of the
// object (the finalizer) carries them back unchanged; the peer ignores them.

var groupVersion = schema.GroupVersion{Group: "acrpool.dev", Version: "v1alpha1"}

type LocalRef struct {
	Name string `json:"name"`
}

type AgentPoolSpec struct {
	RegistryRef         LocalRef              `json:"registryRef"`
	AzureName           string                `json:"azureName,omitempty"`
	Tier                string                `json:"tier,omitempty"`
	OS                  string                `json:"os,omitempty"`
	SubnetID            string                `json:"subnetId,omitempty"`
	Count               *int32                `json:"count,omitempty"`
	Tags                map[string]string     `json:"tags,omitempty"`
	DeletionPolicy      string                `json:"deletionPolicy,omitempty"`
	UpdateStrategy      string                `json:"updateStrategy,omitempty"`
	DrainTimeoutSeconds *int32                `json:"drainTimeoutSeconds,omitempty"`
	CountSchedule       *runtime.RawExtension `json:"countSchedule,omitempty"`
	Autoscale           *runtime.RawExtension `json:"autoscale,omitempty"`
}

type AgentPoolStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	AzureName          string             `json:"azureName,omitempty"`
	AzureResourceID    string             `json:"azureResourceId,omitempty"`
	ProvisioningState  string             `json:"provisioningState,omitempty"`
	Count              *int32             `json:"count,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

type AgentPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AgentPoolSpec   `json:"spec"`
	Status            AgentPoolStatus `json:"status,omitempty"`
}

type AgentPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentPool `json:"items"`
}

type SecretRef struct {
	Name string `json:"name"`
}

type ServicePrincipal struct {
	SecretRef SecretRef `json:"secretRef"`
}

type Credential struct {
	ServicePrincipal *ServicePrincipal `json:"servicePrincipal,omitempty"`
}

type RegistrySpec struct {
	SubscriptionID string     `json:"subscriptionId"`
	ResourceGroup  string     `json:"resourceGroup"`
	Name           string     `json:"name"`
	Credential     Credential `json:"credential"`
}

type Registry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RegistrySpec `json:"spec"`
}

type RegistryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Registry `json:"items"`
}

// Deep copies, written by hand where controller-gen would generate them.

func (in *AgentPool) DeepCopyInto(out *AgentPool) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	s := &out.Spec
	if in.Spec.Count != nil {
		s.Count = new(int32)
		*s.Count = *in.Spec.Count
	}
	if in.Spec.DrainTimeoutSeconds != nil {
		s.DrainTimeoutSeconds = new(int32)
		*s.DrainTimeoutSeconds = *in.Spec.DrainTimeoutSeconds
	}
	if in.Spec.Tags != nil {
		s.Tags = make(map[string]string, len(in.Spec.Tags))
		for k, v := range in.Spec.Tags {
			s.Tags[k] = v
		}
	}
	s.CountSchedule = in.Spec.CountSchedule.DeepCopy()
	s.Autoscale = in.Spec.Autoscale.DeepCopy()
	in.Status.DeepCopyInto(&out.Status)
}

func (in *AgentPoolStatus) DeepCopyInto(out *AgentPoolStatus) {
	*out = *in
	if in.Count != nil {
		out.Count = new(int32)
		*out.Count = *in.Count
	}
	if in.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(in.Conditions))
		for i := range in.Conditions {
			in.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
}

func (in *AgentPoolStatus) DeepCopy() *AgentPoolStatus {
	out := new(AgentPoolStatus)
	in.DeepCopyInto(out)
	return out
}

func (in *AgentPool) DeepCopyObject() runtime.Object {
	out := new(AgentPool)
	in.DeepCopyInto(out)
	return out
}

func (in *AgentPoolList) DeepCopyObject() runtime.Object {
	out := &AgentPoolList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]AgentPool, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

func (in *Registry) DeepCopyInto(out *Registry) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if in.Spec.Credential.ServicePrincipal != nil {
		sp := *in.Spec.Credential.ServicePrincipal
		out.Spec.Credential.ServicePrincipal = &sp
	}
}

func (in *Registry) DeepCopyObject() runtime.Object {
	out := new(Registry)
	in.DeepCopyInto(out)
	return out
}

func (in *RegistryList) DeepCopyObject() runtime.Object {
	out := &RegistryList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]Registry, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

// ---- ARM and Entra ----

// armClient holds the endpoints, one HTTP client for all workers, the
// token cache and the registries' locations.
type armClient struct {
	endpoint  string // no trailing slash
	authority string
	http      *http.Client

	mu        sync.Mutex
	tokens    map[string]token  // tenant/client/secret -> token
	locations map[string]string // registry path -> location
}

type token struct {
	value   string
	refresh time.Time
}

type credential struct {
	tenant, client, secret string
}

// armError is a failed ARM or token call; RetryAfter is the server's wait.
type armError struct {
	Status     int
	Body       string
	RetryAfter time.Duration
}

func (e *armError) Error() string {
	return fmt.Sprintf("ARM answered %d: %.300s", e.Status, e.Body)
}

func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// token returns a bearer token for cred, from the cache unless it is within
// 5 minutes of its expiry. The mutex makes the first fetch single-flight.
func (a *armClient) token(ctx context.Context, cred credential) (string, error) {
	key := cred.tenant + "/" + cred.client + "/" + cred.secret
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[key]; ok && time.Now().Before(t.refresh) {
		return t.value, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cred.client},
		"client_secret": {cred.secret}, "scope": {armScope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		a.authority+"/"+url.PathEscape(cred.tenant)+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", &armError{Status: resp.StatusCode, Body: string(body), RetryAfter: retryAfter(resp.Header)}
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"` // a number, or a string from some endpoints
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token response without access_token")
	}
	secs, _ := strconv.Atoi(strings.Trim(string(tr.ExpiresIn), `"`))
	if secs <= 0 {
		secs = 3600
	}
	lifetime := time.Duration(secs) * time.Second
	margin := 5 * time.Minute
	if lifetime < 2*margin {
		margin = lifetime / 2
	}
	a.tokens[key] = token{value: tr.AccessToken, refresh: time.Now().Add(lifetime - margin)}
	return tr.AccessToken, nil
}

// do sends one ARM request with a bearer token; body is JSON-encoded when
// not nil. It returns the status, headers and body of any answer below 400,
// an *armError otherwise.
func (a *armClient) do(ctx context.Context, cred credential, method, path, apiVersion string, body any) (int, http.Header, []byte, error) {
	tok, err := a.token(ctx, cred)
	if err != nil {
		return 0, nil, nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.endpoint+path+"?api-version="+apiVersion, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, resp.Header, data, &armError{Status: resp.StatusCode, Body: string(data),
			RetryAfter: retryAfter(resp.Header)}
	}
	return resp.StatusCode, resp.Header, data, nil
}

// location returns the registry's Azure location, read with one GET the
// first time and cached for the process's life.
func (a *armClient) location(ctx context.Context, cred credential, registryPath string) (string, error) {
	a.mu.Lock()
	loc, ok := a.locations[registryPath]
	a.mu.Unlock()
	if ok {
		return loc, nil
	}
	_, _, body, err := a.do(ctx, cred, http.MethodGet, registryPath, registryAPIVersion, nil)
	if err != nil {
		return "", err
	}
	var reg struct {
		Location string `json:"location"`
	}
	if err := json.Unmarshal(body, &reg); err != nil || reg.Location == "" {
		return "", fmt.Errorf("registry %s: answer has no location", registryPath)
	}
	a.mu.Lock()
	a.locations[registryPath] = reg.Location
	a.mu.Unlock()
	return reg.Location, nil
}

// armPool is the part of an ARM agent pool the peer reads.
type armPool struct {
	ID         string `json:"id"`
	Properties struct {
		Count             *int32 `json:"count"`
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

type armPoolBody struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties armPoolProperties `json:"properties"`
}

type armPoolProperties struct {
	Count    int32  `json:"count"`
	Tier     string `json:"tier"`
	OS       string `json:"os"`
	SubnetID string `json:"virtualNetworkSubnetResourceId,omitempty"`
}

// ---- the reconciler ----

type AgentPoolReconciler struct {
	client.Client
	ARM *armClient
}

var errRegistryMissing = errors.New("registry missing")

// azure resolves the pool's Registry and its credential from the cache.
func (r *AgentPoolReconciler) azure(ctx context.Context, pool *AgentPool) (credential, string, error) {
	var reg Registry
	if err := r.Get(ctx, types.NamespacedName{Namespace: pool.Namespace, Name: pool.Spec.RegistryRef.Name}, &reg); err != nil {
		if apierrors.IsNotFound(err) {
			return credential{}, "", errRegistryMissing
		}
		return credential{}, "", err
	}
	sp := reg.Spec.Credential.ServicePrincipal
	if sp == nil {
		return credential{}, "", fmt.Errorf("registry %s has no servicePrincipal credential", reg.Name)
	}
	var sec corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: sp.SecretRef.Name}, &sec); err != nil {
		return credential{}, "", err
	}
	cred := credential{tenant: string(sec.Data["AZURE_TENANT_ID"]), client: string(sec.Data["AZURE_CLIENT_ID"]),
		secret: string(sec.Data["AZURE_CLIENT_SECRET"])}
	path := "/subscriptions/" + url.PathEscape(reg.Spec.SubscriptionID) + "/resourceGroups/" +
		url.PathEscape(reg.Spec.ResourceGroup) + "/providers/Microsoft.ContainerRegistry/registries/" +
		url.PathEscape(reg.Spec.Name)
	return cred, path, nil
}

func inFlight(state string) bool {
	switch strings.ToLower(state) {
	case "creating", "updating", "deleting":
		return true
	}
	return false
}

func requeueFor(err error) (ctrl.Result, error) {
	var ae *armError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ctrl.Result{RequeueAfter: ae.RetryAfter}, nil
	}
	return ctrl.Result{}, err
}

func (r *AgentPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pool AgentPool
	if err := r.Get(ctx, req.NamespacedName, &pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	azureName := pool.Spec.AzureName
	if azureName == "" {
		azureName = pool.Name
	}

	if !pool.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&pool, finalizer) {
			return ctrl.Result{}, nil
		}
		cred, regPath, err := r.azure(ctx, &pool)
		if err == nil && pool.Status.AzureResourceID != "" && pool.Spec.DeletionPolicy != "Orphan" {
			status, h, _, derr := r.ARM.do(ctx, cred, http.MethodDelete, regPath+"/agentPools/"+url.PathEscape(azureName),
				poolAPIVersion, nil)
			var ae *armError
			if derr != nil && !(errors.As(derr, &ae) && ae.Status == http.StatusNotFound) {
				return requeueFor(derr)
			}
			if derr == nil && status == http.StatusAccepted {
				wait := retryAfter(h)
				if wait == 0 {
					wait = defaultPoll
				}
				return ctrl.Result{RequeueAfter: wait}, nil
			}
		} else if err != nil && !errors.Is(err, errRegistryMissing) {
			return ctrl.Result{}, err
		}
		controllerutil.RemoveFinalizer(&pool, finalizer)
		return ctrl.Result{}, r.Update(ctx, &pool)
	}

	if !controllerutil.ContainsFinalizer(&pool, finalizer) {
		controllerutil.AddFinalizer(&pool, finalizer)
		if err := r.Update(ctx, &pool); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := pool.Status.DeepCopy()
	cred, regPath, err := r.azure(ctx, &pool)
	if errors.Is(err, errRegistryMissing) {
		r.setReady(&pool, metav1.ConditionFalse, "RegistryRefNotFound",
			fmt.Sprintf("Registry %s/%s does not exist", pool.Namespace, pool.Spec.RegistryRef.Name))
		return ctrl.Result{}, r.writeStatus(ctx, &pool, before)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	poolPath := regPath + "/agentPools/" + url.PathEscape(azureName)

	var body []byte
	var h http.Header
	if inFlight(pool.Status.ProvisioningState) && pool.Status.ObservedGeneration == pool.Generation {
		// Our PUT for this generation is on its way: look, do not send again.
		_, h, body, err = r.ARM.do(ctx, cred, http.MethodGet, poolPath, poolAPIVersion, nil)
	} else {
		var loc string
		if loc, err = r.ARM.location(ctx, cred, regPath); err != nil {
			return requeueFor(err)
		}
		want := armPoolBody{Location: loc, Tags: pool.Spec.Tags, Properties: armPoolProperties{
			Count: 1, Tier: pool.Spec.Tier, OS: pool.Spec.OS, SubnetID: pool.Spec.SubnetID}}
		if pool.Spec.Count != nil {
			want.Properties.Count = *pool.Spec.Count
		}
		if want.Properties.Tier == "" {
			want.Properties.Tier = "S1"
		}
		if want.Properties.OS == "" {
			want.Properties.OS = "Linux"
		}
		_, h, body, err = r.ARM.do(ctx, cred, http.MethodPut, poolPath, poolAPIVersion, want)
	}
	if err != nil {
		var ae *armError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
			// Azure refused what is declared: say so and wait for a change.
			r.setReady(&pool, metav1.ConditionFalse, "AzureError", err.Error())
			pool.Status.ObservedGeneration = pool.Generation
			return ctrl.Result{}, r.writeStatus(ctx, &pool, before)
		}
		return requeueFor(err)
	}
	var got armPool
	if err := json.Unmarshal(body, &got); err != nil {
		return ctrl.Result{}, fmt.Errorf("agent pool answer: %w", err)
	}
	state := got.Properties.ProvisioningState
	if state == "" {
		state = "Succeeded"
	}
	pool.Status.ObservedGeneration = pool.Generation
	pool.Status.AzureName = azureName
	pool.Status.AzureResourceID = got.ID
	pool.Status.ProvisioningState = state
	pool.Status.Count = got.Properties.Count
	result := ctrl.Result{}
	switch {
	case strings.EqualFold(state, "Succeeded"):
		r.setReady(&pool, metav1.ConditionTrue, "Succeeded", fmt.Sprintf("pool %s is provisioned", azureName))
	case inFlight(state):
		r.setReady(&pool, metav1.ConditionFalse, state, fmt.Sprintf("Azure reports %s", state))
		result.RequeueAfter = retryAfter(h)
		if result.RequeueAfter == 0 {
			result.RequeueAfter = defaultPoll
		}
	default:
		r.setReady(&pool, metav1.ConditionFalse, "ProvisioningFailed", fmt.Sprintf("Azure reports %s", state))
	}
	return result, r.writeStatus(ctx, &pool, before)
}

func (r *AgentPoolReconciler) setReady(pool *AgentPool, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&pool.Status.Conditions, metav1.Condition{Type: "Ready", Status: status,
		Reason: reason, Message: msg, ObservedGeneration: pool.Generation})
}

// writeStatus writes the status subresource when it differs from before:
// an unchanged status is not written (a write per pass would be a write per
// resync per pool).
func (r *AgentPoolReconciler) writeStatus(ctx context.Context, pool *AgentPool, before *AgentPoolStatus) error {
	if equality.Semantic.DeepEqual(before, &pool.Status) {
		return nil
	}
	return r.Status().Update(ctx, pool)
}

// poolsOfRegistry enqueues the pools that name a Registry.
func (r *AgentPoolReconciler) poolsOfRegistry(ctx context.Context, o client.Object) []reconcile.Request {
	var pools AgentPoolList
	if err := r.List(ctx, &pools, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{registryRefIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(pools.Items))
	for i := range pools.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pools.Items[i])})
	}
	return out
}

func main() {
	var namespace, armEndpoint, authority, metricsAddr, probeAddr string
	var workers int
	var resync time.Duration
	flag.StringVar(&namespace, "namespace", "", "namespace to watch (default: all)")
	flag.StringVar(&armEndpoint, "arm-endpoint", "https://management.azure.com", "Azure Resource Manager endpoint")
	flag.StringVar(&authority, "authority-host", "https://login.microsoftonline.com", "Microsoft Entra authority")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (\"0\" disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", "0", "address of /healthz and /readyz (\"0\" disables)")
	flag.IntVar(&workers, "workers", 4, "MaxConcurrentReconciles")
	flag.DurationVar(&resync, "resync-period", 10*time.Hour, "the cache's SyncPeriod (controller-runtime's default is 10h)")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "scheme")
		os.Exit(1)
	}
	scheme.AddKnownTypes(groupVersion, &AgentPool{}, &AgentPoolList{}, &Registry{}, &RegistryList{})
	metav1.AddToGroupVersion(scheme, groupVersion)

	cacheOpts := cache.Options{SyncPeriod: &resync}
	if namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         false,
		Cache:                  cacheOpts,
	})
	if err != nil {
		log.Error(err, "manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &AgentPool{}, registryRefIndex, func(o client.Object) []string {
		return []string{o.(*AgentPool).Spec.RegistryRef.Name}
	}); err != nil {
		log.Error(err, "index")
		os.Exit(1)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = workers // keep one connection per worker alive
	r := &AgentPoolReconciler{Client: mgr.GetClient(), ARM: &armClient{
		endpoint: strings.TrimRight(armEndpoint, "/"), authority: strings.TrimRight(authority, "/"),
		http:   &http.Client{Transport: transport, Timeout: 30 * time.Second},
		tokens: map[string]token{}, locations: map[string]string{},
	}}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&AgentPool{}).
		Watches(&Registry{}, handler.EnqueueRequestsFromMapFunc(r.poolsOfRegistry)).
		WithEventFilter(predicate.GenerationChangedPredicate{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("agentpool").
		Complete(r)
	if err != nil {
		log.Error(err, "controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "healthz")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "readyz")
		os.Exit(1)
	}
	log.Info("starting manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
