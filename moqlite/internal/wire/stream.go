package wire

// StreamType is the varint that opens a bidi stream, and the byte that
// opens a uni stream.
type StreamType uint64

// Bidi stream types (the client opens them) and the uni group stream type.
const (
	StreamSession   StreamType = 0x00
	StreamAnnounce  StreamType = 0x01
	StreamSubscribe StreamType = 0x02
	StreamFetch     StreamType = 0x03
	StreamProbe     StreamType = 0x04
	StreamGoaway    StreamType = 0x05
	// StreamClientSetup opens the lite-02 SETUP stream; the server answers
	// on it with StreamServerSetup before SERVER_SETUP.
	StreamClientSetup StreamType = 0x20
	StreamServerSetup StreamType = 0x21

	// UniGroup is the first byte of a group stream.
	UniGroup byte = 0x00
)

// Caps on what a peer may send. They bound what one message can make us
// allocate; the session adds caps on how many.
const (
	// MaxMessage caps a control message body.
	MaxMessage = 16 << 10
	// MaxName caps a broadcast path, prefix, suffix or track name.
	MaxName = 1024
	// MaxHops caps an announce's hop count, as @moq/lite does.
	MaxHops = 256
	// MaxVersions caps the versions a CLIENT_SETUP offers, as @moq/lite does.
	MaxVersions = 128
	// MaxParams caps SETUP parameters and extensions.
	MaxParams = 64
	// MaxSetup caps a SETUP message (its length prefix is 16 bits).
	MaxSetup = 1<<16 - 1
	// MaxFrame caps a frame a client accepts by default.
	MaxFrame = 16 << 20
)
