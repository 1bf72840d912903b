#include "common/pki.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace musafarm::pki {
namespace {

// ---- RAII over OpenSSL's C objects -------------------------------------------------------------

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Asn1IntPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using GenNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME, GENERAL_NAME_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

void FreeCertStack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using CertStackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), FreeCertStack>>;
void FreeGeneralNames(GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, FreeGeneralNames>>;
void FreeOpensslString(char* s) { OPENSSL_free(s); }
using OsslStringPtr = std::unique_ptr<char, Deleter<char, FreeOpensslString>>;

// Drains this thread's OpenSSL error queue into one line ("" when empty), so
// that a failure's message carries OpenSSL's own reason after ours and the
// next call does not report a stale one.
std::string OpensslErrors() {
  std::vector<std::string> parts;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    parts.emplace_back(buf);
  }
  return absl::StrJoin(parts, "; ");
}

// `what` plus OpenSSL's reason, when it gave one.
std::string WithOpenssl(absl::string_view what) {
  std::string errors = OpensslErrors();
  if (errors.empty()) return std::string(what);
  return absl::StrCat(what, " (", errors, ")");
}

absl::Status Internal(absl::string_view what) { return absl::InternalError(WithOpenssl(what)); }

BioPtr ReadBio(const std::string& text) {
  // BIO_new_mem_buf takes an int; no PEM we handle is near 2 GiB.
  return BioPtr(
      BIO_new_mem_buf(text.data(), static_cast<int>(std::min<size_t>(text.size(), INT_MAX))));
}

// Never prompts: OpenSSL's default callback asks the terminal for a
// passphrase when a key is encrypted, which a daemon must not do.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<std::string> BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0 || data == nullptr) return Internal("cannot read back PEM text");
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<PkeyPtr> ReadPrivateKey(const std::string& key_pem) {
  BioPtr bio = ReadBio(key_pem);
  if (!bio) return Internal("cannot allocate a memory BIO");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        WithOpenssl("no usable private key in the PEM text (expected an unencrypted PEM key)"));
  }
  return key;
}

// Every certificate in `pem`, in order. INVALID_ARGUMENT when there is none,
// or when a certificate block is damaged.
absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(const std::string& pem) {
  ERR_clear_error();
  BioPtr bio = ReadBio(pem);
  if (!bio) return Internal("cannot allocate a memory BIO");
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certs.emplace_back(x);
  }
  // The loop ends on "no start line" once the text is used up; anything else
  // is a damaged block.
  unsigned long last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return absl::InvalidArgumentError(WithOpenssl("a certificate in the PEM text is damaged"));
  }
  ERR_clear_error();
  if (certs.empty()) return absl::InvalidArgumentError("no certificate in the PEM text");
  return certs;
}

absl::StatusOr<X509Ptr> ReadFirstCertificate(const std::string& pem) {
  MF_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ReadCertificates(pem));
  return std::move(certs.front());
}

absl::StatusOr<ReqPtr> ReadCsr(const std::string& csr_pem) {
  ERR_clear_error();
  BioPtr bio = ReadBio(csr_pem);
  if (!bio) return Internal("cannot allocate a memory BIO");
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!req) {
    return absl::InvalidArgumentError(
        WithOpenssl("no certificate signing request in the PEM text"));
  }
  return req;
}

// The subject CN of `name` as UTF-8, "" when it has none.
std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return "";
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) {
    ERR_clear_error();
    return "";
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

absl::Status SetCommonName(X509_NAME* name, const std::string& common_name) {
  if (common_name.empty()) return absl::InvalidArgumentError("the common name is empty");
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return absl::InvalidArgumentError(WithOpenssl(absl::StrCat(
        "'", common_name, "' cannot be a certificate common name (at most 64 characters)")));
  }
  return absl::OkStatus();
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::Time FromAsn1Time(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InfinitePast();
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

absl::Status SetValidity(X509* cert, absl::Time not_before, absl::Time not_after) {
  if (not_after <= not_before) {
    return absl::InvalidArgumentError(
        absl::StrCat("the validity period is empty: not after ", Rfc3339(not_after),
                     " is not later than not before ", Rfc3339(not_before)));
  }
  if (ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(not_after)) == nullptr) {
    return absl::InvalidArgumentError(
        WithOpenssl("the validity period cannot be written in a certificate"));
  }
  return absl::OkStatus();
}

// 128 random bits, top bit clear so the DER INTEGER is positive, never zero.
absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return Internal("cannot draw a random serial number");
  bytes[0] &= 0x7f;
  bytes[sizeof(bytes) - 1] |= 0x01;
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn) return Internal("cannot make a serial number");
  Asn1IntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1)
    return Internal("cannot set the serial number");
  return absl::OkStatus();
}

// Adds an extension written in OpenSSL's config syntax. Only for fixed
// values: names that come from callers go through AddSubjectAltNames, which
// cannot be tricked by a ',' in a name.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Internal(
        absl::StrCat("cannot add the certificate extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

bool IsDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_' &&
        c != '*') {
      return false;
    }
  }
  return true;
}

absl::Status AddSubjectAltNames(X509* cert, const IssueOptions& options) {
  if (options.dns_names.empty() && options.ip_addresses.empty()) return absl::OkStatus();
  GenNamesPtr names(GENERAL_NAMES_new());
  if (!names) return Internal("cannot allocate subjectAltName");
  for (const std::string& dns : options.dns_names) {
    if (!IsDnsName(dns)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", dns, "' is not a DNS name (letters, digits, '-', '.')"));
    }
    GenNamePtr gn(GENERAL_NAME_new());
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!gn || ia5 == nullptr ||
        ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(ia5);
      return Internal("cannot allocate a DNS name");
    }
    GENERAL_NAME_set0_value(gn.get(), GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) return Internal("cannot add a DNS name");
    gn.release();  // owned by `names` now
  }
  for (const std::string& ip : options.ip_addresses) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
    }
    GenNamePtr gn(GENERAL_NAME_new());
    if (!gn) {
      ASN1_OCTET_STRING_free(octets);
      return Internal("cannot allocate an IP name");
    }
    GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, octets);
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) return Internal("cannot add an IP name");
    gn.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return Internal("cannot add subjectAltName");
  }
  return absl::OkStatus();
}

// A CSR's key must be one we would make, or at least as strong: signing a
// weak key would put a forgeable identity in the farm.
absl::Status CheckKeyStrength(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
        return absl::InvalidArgumentError(WithOpenssl("the CSR's EC key names no curve"));
      }
      if (std::string(group, len) != "prime256v1" && std::string(group, len) != "P-256") {
        return absl::InvalidArgumentError(absl::StrCat("the CSR's key is on curve ",
                                                       std::string(group, len),
                                                       "; only P-256 (or RSA >= 2048) is signed"));
      }
      return absl::OkStatus();
    }
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key) < 2048) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the CSR's RSA key has ", EVP_PKEY_get_bits(key), " bits; at least 2048 are required"));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat("the CSR's key is of type ",
                                                     OBJ_nid2sn(EVP_PKEY_get_base_id(key)),
                                                     "; only EC P-256 or RSA >= 2048 is signed"));
  }
}

absl::StatusOr<std::string> CertToPem(X509* cert) {
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509(out.get(), cert) != 1)
    return Internal("cannot write the certificate as PEM");
  return BioToString(out.get());
}

std::string Sha256Hex(const unsigned char* data, size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

// basicConstraints CA:TRUE (X509_get_extension_flags parses the extensions
// first).
bool IsCa(X509* cert) { return (X509_get_extension_flags(cert) & EXFLAG_CA) != 0; }

absl::StatusOr<CertInfo> InfoOf(X509* cert) {
  CertInfo info;
  info.common_name = CommonName(X509_get_subject_name(cert));
  info.issuer_common_name = CommonName(X509_get_issuer_name(cert));

  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!serial) return Internal("cannot read the certificate's serial number");
  OsslStringPtr hex(BN_bn2hex(serial.get()));
  if (!hex) return Internal("cannot format the certificate's serial number");
  std::string serial_hex = absl::AsciiStrToLower(hex.get());
  size_t first = serial_hex.find_first_not_of('0', serial_hex[0] == '-' ? 1 : 0);
  if (first == std::string::npos) {
    serial_hex = "0";
  } else if (serial_hex[0] == '-') {
    serial_hex = "-" + serial_hex.substr(first);
  } else {
    serial_hex = serial_hex.substr(first);
  }
  info.serial_hex = std::move(serial_hex);

  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  if (der_len <= 0) return Internal("cannot encode the certificate");
  info.fingerprint = Sha256Hex(der, static_cast<size_t>(der_len));
  OPENSSL_free(der);

  info.not_before = FromAsn1Time(X509_get0_notBefore(cert));
  info.not_after = FromAsn1Time(X509_get0_notAfter(cert));

  GenNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                  static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = gn->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {0};
      int family = ASN1_STRING_length(s) == 4    ? AF_INET
                   : ASN1_STRING_length(s) == 16 ? AF_INET6
                                                 : 0;
      if (family != 0 &&
          inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof(text)) != nullptr) {
        info.ip_addresses.emplace_back(text);
      }
    }
  }
  info.is_ca = IsCa(cert);
  ERR_clear_error();
  return info;
}

std::string Quoted(const std::string& name) { return absl::StrCat("'", name, "'"); }

// A CA certificate presented as a client's names the CA, not an agent: the
// transport passed the chain without its leaf, or a CA key is used as a
// client's. Refused whatever its key usage allows.
std::string CaAsClientMessage(X509* leaf) {
  return absl::StrCat("certificate for ", Quoted(CommonName(X509_get_subject_name(leaf))),
                      " is a CA certificate, not a client's (a client presents its own "
                      "certificate first, then any intermediates)");
}

// The words for a failed chain check. `leaf` is the presented certificate,
// `failed` the one OpenSSL stopped at (the leaf, an intermediate or the CA).
std::string VerifyFailureMessage(int error, X509* leaf, X509* failed, int depth,
                                 const std::vector<X509Ptr>& trusted) {
  const std::string subject =
      absl::StrCat("certificate for ", Quoted(CommonName(X509_get_subject_name(leaf))));
  const std::string issuer = CommonName(X509_get_issuer_name(leaf));
  if (failed == nullptr) failed = leaf;
  // When a certificate above the leaf is the one at fault, say which.
  const std::string which =
      depth > 0 ? absl::StrCat(subject, ": its issuer ",
                               Quoted(CommonName(X509_get_subject_name(failed))), "'s certificate")
                : subject;
  switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return absl::StrCat(which, " expired at ", Rfc3339(FromAsn1Time(X509_get0_notAfter(failed))));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return absl::StrCat(which, " is not valid before ",
                          Rfc3339(FromAsn1Time(X509_get0_notBefore(failed))));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: {
      // A CA with the farm CA's name but another key (a second `ca init`, a
      // restored backup) reads as "issuer 'farm-ca'"; say that it is another.
      bool same_name = false;
      for (const X509Ptr& ca : trusted) {
        same_name |=
            X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_get_issuer_name(leaf)) == 0;
      }
      return absl::StrCat(subject, " is not signed by this farm's CA (issuer ", Quoted(issuer),
                          same_name ? ", a different CA of the same name" : "", ")");
    }
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return absl::StrCat(subject, " is self-signed, not issued by this farm's CA");
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return absl::StrCat(which,
                          " has a signature that does not verify with its issuer's key (issuer ",
                          Quoted(CommonName(X509_get_issuer_name(failed))),
                          "): it was altered, or signed by another CA of the same name");
    case X509_V_ERR_INVALID_PURPOSE:
      if (depth > 0) return absl::StrCat(which, " does not allow client authentication");
      if (IsCa(leaf)) return CaAsClientMessage(leaf);
      if ((X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) != 0 &&
          (X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT) == 0) {
        return absl::StrCat(subject,
                            " does not allow client authentication (its extendedKeyUsage lacks "
                            "clientAuth)");
      }
      return absl::StrCat(subject,
                          " does not allow client authentication (its keyUsage lacks "
                          "digitalSignature)");
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
      return absl::StrCat(subject, " chains through ",
                          Quoted(CommonName(X509_get_subject_name(failed))), ", which is not a CA");
    default:
      return absl::StrCat(which, " was refused: ", X509_verify_cert_error_string(error));
  }
}

// ---- FetchServerCertificates' plumbing ----------------------------------------------------------

struct HostPort {
  std::string host;  // without brackets
  std::string port;
};

absl::StatusOr<HostPort> SplitHostPort(const std::string& host_port) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", host_port, "' is not HOST:PORT (an IPv6 address goes in brackets: [::1]:7070)"));
  };
  HostPort hp;
  if (!host_port.empty() && host_port[0] == '[') {
    const size_t close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':')
      return bad();
    hp.host = host_port.substr(1, close - 1);
    hp.port = host_port.substr(close + 2);
  } else {
    const size_t colon = host_port.rfind(':');
    if (colon == std::string::npos || host_port.find(':') != colon) return bad();
    hp.host = host_port.substr(0, colon);
    hp.port = host_port.substr(colon + 1);
  }
  if (hp.host.empty() || hp.port.empty() ||
      !std::all_of(hp.port.begin(), hp.port.end(), absl::ascii_isdigit)) {
    return bad();
  }
  return hp;
}

struct Socket {
  Socket() = default;
  explicit Socket(int f) : fd(f) {}
  Socket(Socket&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
};

// Waits until `fd` is ready for `events`; DEADLINE_EXCEEDED saying `what`
// once `deadline` has passed.
absl::Status WaitFor(int fd, short events, absl::Time deadline, const std::string& what) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError(what);
    pollfd pfd{fd, events, 0};
    const int n = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n > 0) return absl::OkStatus();  // ready, or an error the next call reports
    if (n < 0 && errno != EINTR)
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
  }
}

// A TCP connection to the first of `hp`'s addresses that answers. Name
// resolution is getaddrinfo's and not bounded by `deadline`.
absl::StatusOr<Socket> Connect(const HostPort& hp, const std::string& host_port,
                               absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", hp.host, "': ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);
  absl::Status last = absl::UnavailableError(absl::StrCat("'", hp.host, "' has no address"));
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    Socket s(socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (s.fd < 0) {
      last = absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
      continue;
    }
    if (connect(s.fd, a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = absl::UnavailableError(
            absl::StrCat("cannot connect to ", host_port, ": ", std::strerror(errno)));
        continue;
      }
      MF_RETURN_IF_ERROR(WaitFor(s.fd, POLLOUT, deadline,
                                 absl::StrCat("cannot connect to ", host_port, " in time")));
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
      if (error != 0) {
        last = absl::UnavailableError(
            absl::StrCat("cannot connect to ", host_port, ": ", std::strerror(error)));
        continue;
      }
    }
    return s;
  }
  return last;
}

// Blocks SIGPIPE on this thread while in scope, and swallows one raised
// meanwhile: a peer that closes mid-handshake must give an error, not kill
// the process (OpenSSL's socket BIO uses write(2), not send(MSG_NOSIGNAL)).
// The pattern is libpq's.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe, &old_) == 0;
  }
  ~SigpipeBlocked() {
    if (!blocked_) return;
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      const timespec zero{0, 0};
      (void)sigtimedwait(&pipe, nullptr, &zero);  // ours: consume it
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

}  // namespace

absl::StatusOr<std::string> GeneratePrivateKey() {
  ERR_clear_error();
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Internal("cannot generate a P-256 key");
  BioPtr out(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY").
  if (!out ||
      PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("cannot write the private key as PEM");
  }
  return BioToString(out.get());
}

absl::StatusOr<std::string> MakeCsr(const std::string& key_pem, const std::string& common_name) {
  ERR_clear_error();
  MF_ASSIGN_OR_RETURN(PkeyPtr key, ReadPrivateKey(key_pem));
  ReqPtr req(X509_REQ_new());
  if (!req) return Internal("cannot allocate a CSR");
  if (X509_REQ_set_version(req.get(), 0) != 1) return Internal("cannot set the CSR version");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  MF_RETURN_IF_ERROR(SetCommonName(name, common_name));
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1)
    return Internal("cannot put the public key in the CSR");
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0)
    return Internal("cannot sign the CSR");
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509_REQ(out.get(), req.get()) != 1)
    return Internal("cannot write the CSR as PEM");
  return BioToString(out.get());
}

absl::StatusOr<CsrInfo> ParseCsr(const std::string& csr_pem) {
  MF_ASSIGN_OR_RETURN(ReqPtr req, ReadCsr(csr_pem));
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr)
    return absl::InvalidArgumentError(WithOpenssl("the CSR carries no usable public key"));
  if (X509_REQ_verify(req.get(), key) != 1) {
    return absl::InvalidArgumentError(
        WithOpenssl("the CSR's signature does not verify: it was altered, or not made with the key "
                    "it carries"));
  }
  ERR_clear_error();
  // Here, not only in SignCsr: enrolment checks a CSR before it spends a
  // join-token use, and a key we would not sign must not cost one.
  MF_RETURN_IF_ERROR(CheckKeyStrength(key));
  return CsrInfo{CommonName(X509_REQ_get_subject_name(req.get()))};
}

absl::StatusOr<Ca> MakeCa(const std::string& common_name, absl::Time not_before,
                          absl::Time not_after) {
  ERR_clear_error();
  MF_ASSIGN_OR_RETURN(std::string key_pem, GeneratePrivateKey());
  MF_ASSIGN_OR_RETURN(PkeyPtr key, ReadPrivateKey(key_pem));
  X509Ptr cert(X509_new());
  if (!cert) return Internal("cannot allocate a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return Internal("cannot set the certificate version");
  MF_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  MF_RETURN_IF_ERROR(SetCommonName(X509_get_subject_name(cert.get()), common_name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return Internal("cannot set the issuer name");
  }
  MF_RETURN_IF_ERROR(SetValidity(cert.get(), not_before, not_after));
  if (X509_set_pubkey(cert.get(), key.get()) != 1)
    return Internal("cannot put the public key in the certificate");
  MF_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  MF_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  MF_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    return Internal("cannot sign the CA certificate");
  MF_ASSIGN_OR_RETURN(std::string cert_pem, CertToPem(cert.get()));
  return Ca{std::move(cert_pem), std::move(key_pem)};
}

absl::StatusOr<std::string> SignCsr(const Ca& ca, const std::string& csr_pem,
                                    const IssueOptions& options) {
  MF_RETURN_IF_ERROR(ParseCsr(csr_pem).status());  // signature and key strength
  if (!options.server && !options.client) {
    // A leaf with no extendedKeyUsage is good for every purpose; say which one.
    return absl::InvalidArgumentError(
        "a certificate must allow server or client authentication (or both)");
  }
  MF_ASSIGN_OR_RETURN(ReqPtr req, ReadCsr(csr_pem));
  EVP_PKEY* subject_key = X509_REQ_get0_pubkey(req.get());

  MF_ASSIGN_OR_RETURN(X509Ptr ca_cert, ReadFirstCertificate(ca.cert_pem));
  MF_ASSIGN_OR_RETURN(PkeyPtr ca_key, ReadPrivateKey(ca.key_pem));
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    return absl::FailedPreconditionError(
        WithOpenssl("the CA key is not the key of the CA certificate"));
  }
  if (X509_check_ca(ca_cert.get()) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the CA certificate ", Quoted(CommonName(X509_get_subject_name(ca_cert.get()))),
        " is not a CA (no basicConstraints CA:TRUE)"));
  }
  ERR_clear_error();

  X509Ptr cert(X509_new());
  if (!cert) return Internal("cannot allocate a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return Internal("cannot set the certificate version");
  MF_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  MF_RETURN_IF_ERROR(SetCommonName(X509_get_subject_name(cert.get()), options.common_name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1) {
    return Internal("cannot set the issuer name");
  }
  MF_RETURN_IF_ERROR(SetValidity(cert.get(), options.not_before, options.not_after));
  if (X509_set_pubkey(cert.get(), subject_key) != 1)
    return Internal("cannot put the public key in the certificate");
  MF_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  MF_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_key_usage,
                                  "critical,digitalSignature,keyEncipherment"));
  const char* eku = options.server && options.client ? "serverAuth,clientAuth"
                    : options.server                 ? "serverAuth"
                                                     : "clientAuth";
  MF_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, eku));
  MF_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_subject_key_identifier, "hash"));
  MF_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always"));
  MF_RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), options));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0)
    return Internal("cannot sign the certificate");
  return CertToPem(cert.get());
}

absl::StatusOr<CertInfo> ParseCertificate(const std::string& cert_pem) {
  MF_ASSIGN_OR_RETURN(X509Ptr cert, ReadFirstCertificate(cert_pem));
  return InfoOf(cert.get());
}

absl::StatusOr<bool> KeyMatchesCertificate(const std::string& key_pem,
                                           const std::string& cert_pem) {
  MF_ASSIGN_OR_RETURN(X509Ptr cert, ReadFirstCertificate(cert_pem));
  MF_ASSIGN_OR_RETURN(PkeyPtr key, ReadPrivateKey(key_pem));
  EVP_PKEY* cert_key = X509_get0_pubkey(cert.get());
  if (cert_key == nullptr)
    return absl::InvalidArgumentError(WithOpenssl("the certificate's public key is unusable"));
  // 1: same key; 0: different; -1: different types (also "no").
  int eq = EVP_PKEY_eq(cert_key, key.get());
  ERR_clear_error();
  if (eq == -2)
    return absl::InvalidArgumentError("cannot compare this key type with the certificate's");
  return eq == 1;
}

absl::StatusOr<CertInfo> VerifyClientCertificate(const std::string& chain_pem,
                                                 const std::string& trusted_pem, absl::Time now) {
  MF_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ReadCertificates(chain_pem));
  absl::StatusOr<std::vector<X509Ptr>> trusted = ReadCertificates(trusted_pem);
  if (!trusted.ok()) {
    // The farm's own configuration is at fault, not the peer.
    return absl::FailedPreconditionError(
        absl::StrCat("the farm's CA bundle is unusable: ", trusted.status().message()));
  }
  StorePtr store(X509_STORE_new());
  if (!store) return Internal("cannot allocate a certificate store");
  for (const X509Ptr& ca : *trusted) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {  // takes its own reference
      return Internal("cannot add a CA certificate to the store");
    }
  }
  CertStackPtr untrusted(sk_X509_new_null());
  if (!untrusted) return Internal("cannot allocate a certificate stack");
  for (size_t i = 1; i < chain.size(); ++i) {
    if (sk_X509_push(untrusted.get(), chain[i].get()) == 0)
      return Internal("cannot stack an intermediate");
    chain[i].release();  // owned by `untrusted` now
  }
  X509* leaf = chain.front().get();

  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return Internal("cannot set up certificate verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(now));
  // An operator's own CA may be an intermediate of a larger PKI: a certificate
  // in the bundle is trusted as an anchor without its own root.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return Internal("cannot ask for client-authentication purpose");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    const int error = X509_STORE_CTX_get_error(ctx.get());
    std::string message =
        VerifyFailureMessage(error, leaf, X509_STORE_CTX_get_current_cert(ctx.get()),
                             X509_STORE_CTX_get_error_depth(ctx.get()), *trusted);
    ERR_clear_error();
    return absl::UnauthenticatedError(message);
  }
  ERR_clear_error();
  if (IsCa(leaf)) return absl::UnauthenticatedError(CaAsClientMessage(leaf));
  MF_ASSIGN_OR_RETURN(CertInfo info, InfoOf(leaf));
  if (info.common_name.empty()) {
    // The CN is the agent's name; a certificate without one names nobody.
    return absl::UnauthenticatedError(
        "the certificate has no subject common name (the agent's name)");
  }
  return info;
}

absl::StatusOr<std::string> PublicKeyPin(const std::string& cert_pem) {
  MF_ASSIGN_OR_RETURN(X509Ptr cert, ReadFirstCertificate(cert_pem));
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (len <= 0) return Internal("cannot encode the certificate's public key");
  std::string pin = Sha256Hex(der, static_cast<size_t>(len));
  OPENSSL_free(der);
  if (pin.empty()) return Internal("cannot hash the certificate's public key");
  return pin;
}

absl::StatusOr<std::vector<std::string>> FetchServerCertificates(const std::string& host_port,
                                                                 absl::Duration timeout) {
  MF_ASSIGN_OR_RETURN(HostPort hp, SplitHostPort(host_port));
  const absl::Time deadline = absl::Now() + timeout;
  MF_ASSIGN_OR_RETURN(Socket socket, Connect(hp, host_port, deadline));

  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Internal("cannot set up TLS");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Not verified on purpose: the caller checks a pin against what comes back.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  // gRPC servers refuse a TLS client that does not offer HTTP/2.
  static const unsigned char kAlpnH2[] = {2, 'h', '2'};
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof(kAlpnH2)) != 0)
    return Internal("cannot offer ALPN h2");
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), socket.fd) != 1)
    return Internal("cannot set up a TLS connection");
  unsigned char ip[sizeof(struct in6_addr)];
  const bool is_ip =
      inet_pton(AF_INET, hp.host.c_str(), ip) == 1 || inet_pton(AF_INET6, hp.host.c_str(), ip) == 1;
  if (!is_ip && SSL_set_tlsext_host_name(ssl.get(), hp.host.c_str()) != 1) {
    return Internal(absl::StrCat("cannot send the server name '", hp.host, "'"));
  }

  SigpipeBlocked no_sigpipe;  // OpenSSL writes to the socket with write(2)
  while (true) {
    const int r = SSL_connect(ssl.get());
    if (r == 1) break;
    const int err = SSL_get_error(ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      MF_RETURN_IF_ERROR(WaitFor(socket.fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline,
                                 absl::StrCat("no TLS handshake with ", host_port, " within ",
                                              absl::FormatDuration(timeout))));
      continue;
    }
    std::string why = OpensslErrors();
    if (why.empty()) {
      why = err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno)
                                                   : "the connection was closed";
    }
    return absl::UnavailableError(absl::StrCat(host_port,
                                               " did not complete a TLS handshake (is it serving ",
                                               "plaintext, --insecure?): ", why));
  }
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());  // owned by `ssl`; leaf first
  std::vector<std::string> pems;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    MF_ASSIGN_OR_RETURN(std::string pem, CertToPem(sk_X509_value(chain, i)));
    pems.push_back(std::move(pem));
  }
  (void)SSL_shutdown(ssl.get());  // one close_notify, not waited for: we are done either way
  ERR_clear_error();
  if (pems.empty()) return absl::UnavailableError(absl::StrCat(host_port, " sent no certificate"));
  return pems;
}

}  // namespace musafarm::pki
