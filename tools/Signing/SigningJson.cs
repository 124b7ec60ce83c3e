using System.Text.Json.Serialization;

namespace ModelCar.Signing;

/// <summary>
/// The JSON body of cosign's encrypted private key (secure-systems-lab/go-securesystemslib
/// encrypted/encrypted.go): scrypt parameters and salt, the secretbox nonce, the ciphertext (all
/// byte strings base64, as Go's encoding/json writes []byte).
/// </summary>
public sealed record EncryptedKeyBody
{
    [JsonPropertyName("kdf")] public EncryptedKeyKdf? Kdf { get; init; }
    [JsonPropertyName("cipher")] public EncryptedKeyCipher? Cipher { get; init; }
    [JsonPropertyName("ciphertext")] public byte[]? Ciphertext { get; init; }
}

public sealed record EncryptedKeyKdf
{
    [JsonPropertyName("name")] public string? Name { get; init; }
    [JsonPropertyName("params")] public ScryptParams? Params { get; init; }
    [JsonPropertyName("salt")] public byte[]? Salt { get; init; }
}

public sealed record ScryptParams
{
    [JsonPropertyName("N")] public int N { get; init; }
    [JsonPropertyName("r")] public int R { get; init; }
    [JsonPropertyName("p")] public int P { get; init; }
}

public sealed record EncryptedKeyCipher
{
    [JsonPropertyName("name")] public string? Name { get; init; }
    [JsonPropertyName("nonce")] public byte[]? Nonce { get; init; }
}

/// <summary>A DSSE envelope (secure-systems-lab/dsse envelope.md).</summary>
public sealed record DsseEnvelope
{
    [JsonPropertyName("payloadType")] public required string PayloadType { get; init; }
    [JsonPropertyName("payload")] public required string Payload { get; init; }
    [JsonPropertyName("signatures")] public required IReadOnlyList<DsseSignature> Signatures { get; init; }
}

public sealed record DsseSignature
{
    [JsonPropertyName("keyid")] public string KeyId { get; init; } = "";
    [JsonPropertyName("sig")] public required string Sig { get; init; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(EncryptedKeyBody))]
[JsonSerializable(typeof(DsseEnvelope))]
internal sealed partial class SigningJsonContext : JsonSerializerContext;
