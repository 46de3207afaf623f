#include "core/reason_code.hpp"

namespace tern {

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::kSuccess: return "success";
    case Reason::kGrantedQos1: return "granted QoS 1";
    case Reason::kGrantedQos2: return "granted QoS 2";
    case Reason::kDisconnectWithWill: return "disconnect with will message";
    case Reason::kNoMatchingSubscribers: return "no matching subscribers";
    case Reason::kNoSubscriptionExisted: return "no subscription existed";
    case Reason::kContinueAuthentication: return "continue authentication";
    case Reason::kReAuthenticate: return "re-authenticate";
    case Reason::kUnspecifiedError: return "unspecified error";
    case Reason::kMalformedPacket: return "malformed packet";
    case Reason::kProtocolError: return "protocol error";
    case Reason::kImplementationSpecificError: return "implementation specific error";
    case Reason::kUnsupportedProtocolVersion: return "unsupported protocol version";
    case Reason::kClientIdentifierNotValid: return "client identifier not valid";
    case Reason::kBadUserNameOrPassword: return "bad user name or password";
    case Reason::kNotAuthorized: return "not authorized";
    case Reason::kServerUnavailable: return "server unavailable";
    case Reason::kServerBusy: return "server busy";
    case Reason::kBanned: return "banned";
    case Reason::kServerShuttingDown: return "server shutting down";
    case Reason::kBadAuthenticationMethod: return "bad authentication method";
    case Reason::kKeepAliveTimeout: return "keep alive timeout";
    case Reason::kSessionTakenOver: return "session taken over";
    case Reason::kTopicFilterInvalid: return "topic filter invalid";
    case Reason::kTopicNameInvalid: return "topic name invalid";
    case Reason::kPacketIdentifierInUse: return "packet identifier in use";
    case Reason::kPacketIdentifierNotFound: return "packet identifier not found";
    case Reason::kReceiveMaximumExceeded: return "receive maximum exceeded";
    case Reason::kTopicAliasInvalid: return "topic alias invalid";
    case Reason::kPacketTooLarge: return "packet too large";
    case Reason::kMessageRateTooHigh: return "message rate too high";
    case Reason::kQuotaExceeded: return "quota exceeded";
    case Reason::kAdministrativeAction: return "administrative action";
    case Reason::kPayloadFormatInvalid: return "payload format invalid";
    case Reason::kRetainNotSupported: return "retain not supported";
    case Reason::kQosNotSupported: return "QoS not supported";
    case Reason::kUseAnotherServer: return "use another server";
    case Reason::kServerMoved: return "server moved";
    case Reason::kSharedSubscriptionsNotSupported: return "shared subscriptions not supported";
    case Reason::kConnectionRateExceeded: return "connection rate exceeded";
    case Reason::kMaximumConnectTime: return "maximum connect time";
    case Reason::kSubscriptionIdentifiersNotSupported: return "subscription identifiers not supported";
    case Reason::kWildcardSubscriptionsNotSupported: return "wildcard subscriptions not supported";
  }
  return "unknown reason";
}

ConnackV3 to_v3_connack(Reason r) {
  switch (r) {
    case Reason::kSuccess: return ConnackV3::kAccepted;
    case Reason::kUnsupportedProtocolVersion: return ConnackV3::kUnacceptableProtocolVersion;
    case Reason::kClientIdentifierNotValid: return ConnackV3::kIdentifierRejected;
    case Reason::kBadUserNameOrPassword: return ConnackV3::kBadUserNameOrPassword;
    case Reason::kNotAuthorized:
    case Reason::kBanned: return ConnackV3::kNotAuthorized;
    default: return ConnackV3::kServerUnavailable;
  }
}

const char* connack_v3_name(std::uint8_t code) {
  switch (code) {
    case 0: return "Connection Accepted";
    case 1: return "Connection Refused: unacceptable protocol version";
    case 2: return "Connection Refused: identifier rejected";
    case 3: return "Connection Refused: broker unavailable";
    case 4: return "Connection Refused: bad user name or password";
    case 5: return "Connection Refused: not authorised";
    default: return "Connection Refused: unknown reason";
  }
}

}  // namespace tern
