using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelCar.Oci;

/// <summary>An OCI content digest (<c>sha256:&lt;64 hex&gt;</c> or sha512), validated on parse.</summary>
[JsonConverter(typeof(DigestJsonConverter))]
public readonly record struct Digest
{
    private Digest(string algorithm, string encoded)
    {
        Algorithm = algorithm;
        Encoded = encoded;
    }

    public string Algorithm { get; }
    public string Encoded { get; }

    public static Digest Parse(string text) =>
        TryParse(text, out var d) ? d : throw new FormatException($"'{text}' is not a valid digest (expected sha256:<64 hex digits>)");

    public static bool TryParse(string? text, out Digest digest)
    {
        digest = default;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }
        int colon = text.IndexOf(':');
        if (colon <= 0)
        {
            return false;
        }
        var alg = text[..colon];
        var hex = text[(colon + 1)..];
        int expected = alg switch { "sha256" => 64, "sha512" => 128, _ => -1 };
        if (expected < 0 || hex.Length != expected || !hex.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
        {
            return false;
        }
        digest = new Digest(alg, hex);
        return true;
    }

    public static Digest FromSha256Hash(ReadOnlySpan<byte> hash) => new("sha256", Convert.ToHexStringLower(hash));

    public static Digest Sha256(ReadOnlySpan<byte> data) => FromSha256Hash(SHA256.HashData(data));

    public bool IsDefault => Algorithm is null;

    /// <summary>Constant-time comparison (digests guard content integrity).</summary>
    public bool Matches(Digest other) => Algorithm == other.Algorithm &&
        CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(Encoded ?? string.Empty), System.Text.Encoding.ASCII.GetBytes(other.Encoded ?? string.Empty));

    public override string ToString() => Algorithm is null ? string.Empty : $"{Algorithm}:{Encoded}";
}

public sealed class DigestJsonConverter : JsonConverter<Digest>
{
    public override Digest Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var s = reader.GetString();
        return Digest.TryParse(s, out var d) ? d : throw new JsonException($"invalid digest '{s}'");
    }

    public override void Write(Utf8JsonWriter writer, Digest value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}
