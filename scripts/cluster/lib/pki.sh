# shellcheck shell=bash
# Local PKI for the single-node cluster, made with openssl (sourced by scripts/cluster/up).
# Creates each file only if it is missing, so re-running `up` keeps existing identities.
#
#   pki_all DIR NODE_NAME NODE_IP SERVICE_IP   -> DIR/{ca,front-proxy-ca}.{crt,key}, sa.{key,pub},
#                                                leaf certs named after their use (see below)

_pki_key() {  # _pki_key FILE
  [[ -f "$1" ]] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

_pki_ca() {  # _pki_ca DIR NAME CN
  local dir="$1" name="$2" cn="$3"
  [[ -f "$dir/$name.crt" ]] && return 0
  _pki_key "$dir/$name.key"
  openssl req -x509 -new -sha256 -key "$dir/$name.key" -days 3650 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -out "$dir/$name.crt"
}

# _pki_leaf DIR CA NAME SUBJECT EKU [SAN]: a certificate for NAME signed by CA.
_pki_leaf() {
  local dir="$1" ca="$2" name="$3" subj="$4" eku="$5" san="${6:-}"
  [[ -f "$dir/$name.crt" ]] && return 0
  _pki_key "$dir/$name.key"
  local ext="$dir/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -sha256 -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr"
  openssl x509 -req -sha256 -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

pki_all() {
  local dir="$1" node="$2" node_ip="$3" svc_ip="$4"
  mkdir -p "$dir"; chmod 700 "$dir"
  _pki_ca "$dir" ca modelship-cluster-ca
  _pki_ca "$dir" front-proxy-ca modelship-front-proxy-ca
  _pki_leaf "$dir" ca apiserver "/CN=kube-apiserver" serverAuth \
    "IP:$node_ip,IP:$svc_ip,IP:127.0.0.1,DNS:localhost,DNS:$node,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  _pki_leaf "$dir" ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  _pki_leaf "$dir" ca admin "/O=system:masters/CN=modelship-admin" clientAuth
  _pki_leaf "$dir" ca controller-manager "/CN=system:kube-controller-manager" clientAuth
  _pki_leaf "$dir" ca scheduler "/CN=system:kube-scheduler" clientAuth
  _pki_leaf "$dir" ca kube-proxy "/CN=system:kube-proxy" clientAuth
  _pki_leaf "$dir" ca kubelet-client "/O=system:nodes/CN=system:node:$node" clientAuth
  _pki_leaf "$dir" ca kubelet-serving "/O=system:nodes/CN=system:node:$node" serverAuth \
    "IP:$node_ip,DNS:$node"
  _pki_leaf "$dir" front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth
  _pki_leaf "$dir" ca metrics-server-client "/CN=system:metrics-server" clientAuth
  _pki_leaf "$dir" ca metrics-server-serving "/CN=metrics-server" serverAuth \
    "IP:$node_ip,DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.cluster.local"
  if [[ ! -f "$dir/sa.pub" ]]; then
    _pki_key "$dir/sa.key"
    openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub"
  fi
}

# pki_kubeconfig KUBECTL FILE SERVER CA CERT KEY USER: write a kubeconfig with embedded certs.
pki_kubeconfig() {
  local kubectl="$1" file="$2" server="$3" ca="$4" cert="$5" key="$6" user="$7"
  [[ -f "$file" ]] && return 0
  local tmp="$file.tmp"
  rm -f "$tmp"
  "$kubectl" config set-cluster modelship --kubeconfig="$tmp" --server="$server" \
    --certificate-authority="$ca" --embed-certs=true >/dev/null
  "$kubectl" config set-credentials "$user" --kubeconfig="$tmp" \
    --client-certificate="$cert" --client-key="$key" --embed-certs=true >/dev/null
  "$kubectl" config set-context modelship --kubeconfig="$tmp" --cluster=modelship --user="$user" >/dev/null
  "$kubectl" config use-context modelship --kubeconfig="$tmp" >/dev/null
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}
