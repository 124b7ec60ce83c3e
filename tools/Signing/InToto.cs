using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing;

/// <summary>
/// A resource in a statement (in-toto ResourceDescriptor): a name or URI and its sha256; a model file also
/// has its <paramref name="Path"/> in the model (written as the descriptor's <c>name</c>, which tells the
/// model files apart from the base images among the resolvedDependencies).
/// </summary>
public sealed record ResourceDigest(string Name, string Sha256Hex, string? Path = null);

/// <summary>What the SLSA provenance v1 predicate of a ModelCar says.</summary>
public sealed record ProvenanceFacts
{
    /// <summary>The image digests this statement is about (the index and each platform manifest).</summary>
    public required IReadOnlyList<(string Name, Digest Digest)> Subjects { get; init; }

    /// <summary>Every model file (hf://ORG/NAME@COMMIT/PATH or its path in the image) with the sha256 taken during the one read.</summary>
    public required IReadOnlyList<ResourceDigest> ModelFiles { get; init; }

    /// <summary>Base images (reference, manifest digest), per platform.</summary>
    public IReadOnlyList<(string Uri, Digest Digest)> BaseImages { get; init; } = [];

    /// <summary>buildDefinition.externalParameters: strings or string lists.</summary>
    public required IReadOnlyDictionary<string, object> ExternalParameters { get; init; }

    public required string BuilderId { get; init; }
    public string? BuilderVersion { get; init; }
    public string? InvocationId { get; init; }
}

/// <summary>in-toto Statement v1 (in-toto/attestation spec/v1) with a SLSA provenance v1 predicate (slsa-framework/slsa provenance.cue).</summary>
public static class InToto
{
    public const string StatementType = "https://in-toto.io/Statement/v1";

    /// <summary>
    /// The start every statement shares: <c>_type</c>, the <c>subject</c> list (name + digest each) and
    /// <c>predicateType</c>; the caller writes <c>predicate</c> and closes the object.
    /// </summary>
    public static void WriteStatementHead(System.Text.Json.Utf8JsonWriter w, IEnumerable<(string Name, string Algorithm, string Hex)> subjects, string predicateType)
    {
        w.WriteStartObject();
        w.WriteString("_type", StatementType);
        w.WriteStartArray("subject");
        foreach (var (name, algorithm, hex) in subjects)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteStartObject("digest");
            w.WriteString(algorithm, hex);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("predicateType", predicateType);
    }
    public const string SlsaProvenanceV1 = "https://slsa.dev/provenance/v1";
    public const string BuildType = "https://github.com/modelcar/modelcar-tools/oci-pack@v1";

    /// <summary>The statement bytes; deterministic for the same facts (no clock inside), so a re-run finds its attestation.</summary>
    public static byte[] Provenance(ProvenanceFacts facts)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            WriteStatementHead(w, facts.Subjects.Select(x => (x.Name, x.Digest.Algorithm, x.Digest.Encoded)), SlsaProvenanceV1);
            w.WriteStartObject("predicate");
            w.WriteStartObject("buildDefinition");
            w.WriteString("buildType", BuildType);
            w.WriteStartObject("externalParameters");
            foreach (var (k, v) in facts.ExternalParameters.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                switch (v)
                {
                    case string s:
                        w.WriteString(k, s);
                        break;
                    case IEnumerable<string> list:
                        w.WriteStartArray(k);
                        foreach (var item in list)
                        {
                            w.WriteStringValue(item);
                        }
                        w.WriteEndArray();
                        break;
                    default:
                        w.WriteString(k, v.ToString());
                        break;
                }
            }
            w.WriteEndObject();
            w.WriteStartArray("resolvedDependencies");
            foreach (var (uri, digest) in facts.BaseImages)
            {
                w.WriteStartObject();
                w.WriteString("uri", uri);
                w.WriteStartObject("digest");
                w.WriteString(digest.Algorithm, digest.Encoded);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            foreach (var f in facts.ModelFiles)
            {
                w.WriteStartObject();
                if (f.Path is { } path)
                {
                    w.WriteString("name", path);
                }
                w.WriteString("uri", f.Name);
                w.WriteStartObject("digest");
                w.WriteString("sha256", f.Sha256Hex);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("runDetails");
            w.WriteStartObject("builder");
            w.WriteString("id", facts.BuilderId);
            if (facts.BuilderVersion is { } version)
            {
                w.WriteStartObject("version");
                w.WriteString("modelcar-tools", version);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (facts.InvocationId is { } invocation)
            {
                w.WriteStartObject("metadata");
                w.WriteString("invocationId", invocation);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
