// Package nts is Network Time Security for NTP (RFC 8915), sans-IO.
//
//   - AES-SIV (RFC 5297) on crypto/aes: SIV, with AEAD_AES_SIV_CMAC_256
//     (and _384, _512) as AEADAlgorithm.
//   - NTS-KE records and messages: AppendRecord, ParseRecord, MessageLen
//     (stream framing), ParseMessage, Message.Append; the client side
//     (ClientRequest, ParseKEResponse) and the server side (KEServer), with
//     the TLS session behind an Exporter.
//   - Server cookies under rotating master keys: KeyRing (SealCookie,
//     OpenCookie, Rotate, RotateIfDue, MarshalBinary, UnmarshalKeyRing).
//   - NTP extension fields (unique identifier, cookie, placeholder,
//     authenticator): ClientSession is the client's ntp.Authenticator;
//     Server.Verify and ServerReply.Append are the NTP server's side.
//
// Nothing here touches the network, files or the clock: TLS, sockets and
// the key file are service/ntsio's; randomness is an io.Reader the caller
// hands in (crypto/rand.Reader in the daemon).
package nts
