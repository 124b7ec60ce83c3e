using System.Globalization;
using System.Text.RegularExpressions;

namespace ModelCar.ModelRegistry;

/// <summary>The values of a registration a caller gives as text (a command names each by its own option).</summary>
public enum RegistrationField
{
    VersionName,
    VersionPattern,
    Property,
    HfRepo,
    HfCommit,
    ImageDigest,
    ImageSize,
    Platforms,
    ModelFilesDigest,
    SignatureDigests,
    AttestationDigests,
}

/// <summary>
/// A registration value given as text is malformed or contradicts another (exit 2 in the tools). The message names
/// the values in domain words; <see cref="Render"/> gives the same line with the caller's names for them (its options).
/// </summary>
public sealed class RegistrationInputException(RegistrationField field, Func<Func<RegistrationField, string>, string> render)
    : ModelRegistryException(render(DomainName))
{
    /// <summary>The value that is wrong (the first one the message names).</summary>
    public RegistrationField Field { get; } = field;

    public override bool IsInvalidInput => true;

    /// <summary>The message with <paramref name="name"/>'s name for each value it mentions.</summary>
    public string Render(Func<RegistrationField, string> name) => render(name);

    /// <summary>How the library names a value: "image digest", "version pattern", ….</summary>
    public static string DomainName(RegistrationField field) => field switch
    {
        RegistrationField.VersionName => "version name",
        RegistrationField.VersionPattern => "version pattern",
        RegistrationField.Property => "property",
        RegistrationField.HfRepo => "Hugging Face repo",
        RegistrationField.HfCommit => "Hugging Face commit",
        RegistrationField.ImageDigest => "image digest",
        RegistrationField.ImageSize => "image size",
        RegistrationField.Platforms => "platforms",
        RegistrationField.ModelFilesDigest => "model files digest",
        RegistrationField.SignatureDigests => "signature digests",
        RegistrationField.AttestationDigests => "attestation digests",
        _ => field.ToString(),
    };
}

/// <summary>
/// Where a ModelCar image came from and how it was signed: each one becomes a string artifact property
/// (<see cref="ModelCarProperties"/>; strings because image-size can exceed the API's 9-digit int_value).
/// A blank value (a Tekton param defaulting to "") means "not given".
/// </summary>
public sealed record Provenance
{
    public string? HfRepo { get; init; }
    public string? HfCommit { get; init; }

    /// <summary>sha256:… of the image.</summary>
    public string? ImageDigest { get; init; }

    /// <summary>Bytes, a non-negative integer.</summary>
    public string? ImageSize { get; init; }

    /// <summary>Comma-separated OS/ARCH[/VARIANT].</summary>
    public string? Platforms { get; init; }

    /// <summary>sha256 of the model's file listing.</summary>
    public string? ModelFilesDigest { get; init; }

    /// <summary>Comma-separated sha256:… of the signature manifests (sha256-HEX.sig) pushed.</summary>
    public string? SignatureDigests { get; init; }

    /// <summary>Comma-separated sha256:… of the attestation manifests (sha256-HEX.att) pushed.</summary>
    public string? AttestationDigests { get; init; }
}

/// <summary>
/// A registration as a caller gives it (text, blank meaning "not given"): <see cref="ToRequest"/> checks every
/// value before any request and builds the <see cref="RegistrationRequest"/> the <see cref="Registrar"/> sends.
/// </summary>
public sealed record RegistrationInput
{
    public required string ModelName { get; init; }
    public required string VersionName { get; init; }
    public required string Uri { get; init; }
    public string? ModelFormatName { get; init; }
    public string? ModelFormatVersion { get; init; }
    public string? StorageKey { get; init; }
    public string? StoragePath { get; init; }
    public string? Author { get; init; }
    public string? Owner { get; init; }
    public string? ModelDescription { get; init; }
    public string? VersionDescription { get; init; }

    /// <summary>Custom properties: KEY=VALUE (string), KEY:int=5, KEY:double=1.5, KEY:bool=true (<see cref="RegistrationProperties.Parse"/>).</summary>
    public IReadOnlyList<string> Properties { get; init; } = [];

    public Provenance Provenance { get; init; } = new();

    /// <summary>A regex the whole version name must match (<see cref="RegistrationProperties.CheckVersionPattern"/>).</summary>
    public string? VersionPattern { get; init; }

    public bool Update { get; init; }

    /// <summary>The request, every value checked (a <see cref="RegistrationInputException"/> names the first wrong one).</summary>
    public RegistrationRequest ToRequest()
    {
        var request = new RegistrationRequest
        {
            ModelName = ModelName,
            VersionName = VersionName,
            Uri = Uri,
            ModelFormatName = Given(ModelFormatName),
            ModelFormatVersion = Given(ModelFormatVersion),
            StorageKey = Given(StorageKey),
            StoragePath = Given(StoragePath),
            Author = Given(Author),
            Owner = Given(Owner),
            ModelDescription = Given(ModelDescription),
            VersionDescription = Given(VersionDescription),
            Properties = RegistrationProperties.WithProvenance(RegistrationProperties.Parse(Properties), Provenance),
            Update = Update,
        };
        RegistrationProperties.CheckVersionPattern(request.VersionName, VersionPattern);
        return request;
    }

    /// <summary>An empty optional value (a Tekton param defaulting to "") means "not given": the field is omitted.</summary>
    internal static string? Given(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}

/// <summary>The checks and parsing behind <see cref="RegistrationInput.ToRequest"/>.</summary>
public static class RegistrationProperties
{
    private static readonly Regex Sha256Digest = new("^sha256:[0-9a-f]{64}$", RegexOptions.CultureInvariant);

    private static RegistrationInputException Invalid(RegistrationField field, Func<Func<RegistrationField, string>, string> render) => new(field, render);

    /// <summary>KEY=VALUE (string), KEY:int=5, KEY:double=1.5, KEY:bool=true|false; an unknown ":type" stays part of the key.</summary>
    public static Dictionary<string, MetadataValue> Parse(IEnumerable<string> specs)
    {
        const RegistrationField P = RegistrationField.Property;
        var result = new Dictionary<string, MetadataValue>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0)
            {
                throw Invalid(P, n => $"{n(P)} '{spec}' is not KEY=VALUE (or KEY:int=, KEY:double=, KEY:bool=)");
            }
            string key = spec[..eq];
            string value = spec[(eq + 1)..];
            string type = "string";
            int colon = key.LastIndexOf(':');
            if (colon > 0 && key[(colon + 1)..] is "string" or "int" or "double" or "bool")
            {
                type = key[(colon + 1)..];
                key = key[..colon];
            }
            if (key.Trim().Length == 0)
            {
                throw Invalid(P, n => $"{n(P)} '{spec}' has an empty key");
            }
            MetadataValue v = type switch
            {
                "int" => int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int i) && Math.Abs((long)i) <= 999_999_999
                    ? MetadataValue.Of(i) // the API's int_value pattern allows at most 9 digits
                    : throw Invalid(P, n => $"{n(P)} '{spec}': '{value}' is not an integer of at most 9 digits"),
                "double" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
                    ? MetadataValue.Of(d)
                    : throw Invalid(P, n => $"{n(P)} '{spec}': '{value}' is not a finite number"),
                "bool" => value switch
                {
                    "true" => MetadataValue.Of(true),
                    "false" => MetadataValue.Of(false),
                    _ => throw Invalid(P, n => $"{n(P)} '{spec}': '{value}' is not true or false"),
                },
                _ => MetadataValue.Of(value),
            };
            if (!result.TryAdd(key, v))
            {
                throw Invalid(P, n => $"{n(P)} '{key}' is given twice");
            }
        }
        return result;
    }

    /// <summary>
    /// Adds the provenance to the custom properties (string values). A key also given as a custom property is an error.
    /// </summary>
    public static Dictionary<string, MetadataValue> WithProvenance(Dictionary<string, MetadataValue> properties, Provenance provenance)
    {
        var imageDigest = RegistrationInput.Given(provenance.ImageDigest);
        var filesDigest = RegistrationInput.Given(provenance.ModelFilesDigest);
        var imageSize = RegistrationInput.Given(provenance.ImageSize);
        var platforms = RegistrationInput.Given(provenance.Platforms);
        if (imageDigest is not null && !Sha256Digest.IsMatch(imageDigest))
        {
            throw Invalid(RegistrationField.ImageDigest, n => $"{n(RegistrationField.ImageDigest)} '{imageDigest}' is not sha256:<64 hex digits>");
        }
        if (filesDigest is not null && !Sha256Digest.IsMatch(filesDigest))
        {
            throw Invalid(RegistrationField.ModelFilesDigest, n => $"{n(RegistrationField.ModelFilesDigest)} '{filesDigest}' is not sha256:<64 hex digits>");
        }
        var signatureList = DigestList(RegistrationInput.Given(provenance.SignatureDigests), RegistrationField.SignatureDigests);
        var attestationList = DigestList(RegistrationInput.Given(provenance.AttestationDigests), RegistrationField.AttestationDigests);
        if (imageSize is not null && !(long.TryParse(imageSize, NumberStyles.None, CultureInfo.InvariantCulture, out long size) && size >= 0))
        {
            throw Invalid(RegistrationField.ImageSize, n => $"{n(RegistrationField.ImageSize)} '{imageSize}' is not a number of bytes");
        }
        string? platformList = null;
        if (platforms is not null)
        {
            var items = platforms.Split(',', StringSplitOptions.TrimEntries);
            if (items.Any(p => !Regex.IsMatch(p, "^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$", RegexOptions.CultureInvariant)))
            {
                throw Invalid(RegistrationField.Platforms, n => $"{n(RegistrationField.Platforms)} '{platforms}' is not a comma-separated list of OS/ARCH[/VARIANT]");
            }
            platformList = string.Join(",", items);
        }
        foreach (var (key, value, field) in new[]
        {
            (ModelCarProperties.HfRepo, RegistrationInput.Given(provenance.HfRepo), RegistrationField.HfRepo),
            (ModelCarProperties.HfCommit, RegistrationInput.Given(provenance.HfCommit), RegistrationField.HfCommit),
            (ModelCarProperties.ImageDigest, imageDigest, RegistrationField.ImageDigest),
            (ModelCarProperties.ImageSize, imageSize, RegistrationField.ImageSize),
            (ModelCarProperties.Platforms, platformList, RegistrationField.Platforms),
            (ModelCarProperties.ModelFilesDigest, filesDigest, RegistrationField.ModelFilesDigest),
            (ModelCarProperties.SignatureDigests, signatureList, RegistrationField.SignatureDigests),
            (ModelCarProperties.AttestationDigests, attestationList, RegistrationField.AttestationDigests),
        })
        {
            if (value is not null && !properties.TryAdd(key, MetadataValue.Of(value)))
            {
                throw Invalid(field, n => $"{n(field)} and {n(RegistrationField.Property)} '{key}' both set '{key}': give it once");
            }
        }
        return properties;
    }

    /// <summary>A comma-separated list of sha256 digests, normalized (no spaces, no empty items); null when empty.</summary>
    private static string? DigestList(string? list, RegistrationField field)
    {
        if (list is null)
        {
            return null;
        }
        var items = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.FirstOrDefault(i => !Sha256Digest.IsMatch(i)) is { } bad)
        {
            throw Invalid(field, n => $"{n(field)}: '{bad}' is not sha256:<64 hex digits> (give a comma-separated list)");
        }
        return items.Length == 0 ? null : string.Join(",", items);
    }

    /// <summary>The whole version name must match <paramref name="pattern"/> (anchored); no pattern, no check.</summary>
    public static void CheckVersionPattern(string versionName, string? pattern)
    {
        const RegistrationField V = RegistrationField.VersionName, P = RegistrationField.VersionPattern;
        if (string.IsNullOrEmpty(pattern))
        {
            return;
        }
        Regex regex;
        try
        {
            _ = new Regex(pattern, RegexOptions.CultureInvariant); // errors name the user's pattern, not the anchored one
            regex = new Regex($"^(?:{pattern})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw Invalid(P, n => $"{n(P)} '{pattern}' is not a valid regex: {e.Message}");
        }
        if (!regex.IsMatch(versionName))
        {
            throw Invalid(V, n => $"{n(V)} '{versionName}' does not match {n(P)} '{pattern}'");
        }
    }
}
