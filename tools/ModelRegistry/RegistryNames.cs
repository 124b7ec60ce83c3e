using System.Text;

namespace ModelCar.ModelRegistry;

/// <summary>
/// The names this client looks up. The published API (v1alpha3, api/openapi/model-registry.yaml) constrains the
/// <c>name</c> query parameter of <c>GET /registered_model</c>, <c>/model_version</c> and the listings to
/// <see cref="Pattern"/>: printable ASCII. A name outside it could be created (the body is not constrained) but never
/// found again by name, so every re-run would create again or fail: such names are refused before any request.
/// </summary>
public static class RegistryNames
{
    /// <summary>The spec's pattern for <c>?name=</c> values.</summary>
    public const string Pattern = @"^[\x20-\x7E]+$";

    /// <summary>True when <paramref name="name"/> matches <see cref="Pattern"/> (non-empty, every char 0x20–0x7E).</summary>
    public static bool IsValid(string name) => name.Length > 0 && name.All(c => c is >= '\x20' and <= '\x7E');

    /// <summary>The name for one error line: characters outside printable ASCII as \uXXXX escapes.</summary>
    public static string Printable(string name)
    {
        var sb = new StringBuilder(name.Length + 8);
        foreach (var c in name)
        {
            if (c is >= '\x20' and <= '\x7E' && c != '\\')
            {
                sb.Append(c);
            }
            else
            {
                sb.Append(c == '\\' ? "\\\\" : $"\\u{(int)c:x4}");
            }
        }
        return sb.ToString();
    }

    /// <summary>Why <paramref name="name"/> cannot be looked up (one line, naming the rule), or null when it can.</summary>
    public static string? Problem(string what, string name) => IsValid(name)
        ? null
        : $"{what} '{Printable(name)}' has a character outside printable ASCII: the Model Registry API (v1alpha3) looks names up as ?name= values, which must match {Pattern}";
}

/// <summary>A value the caller passed is not one the Model Registry API takes (exit 2 in the tools).</summary>
public sealed class ModelRegistryInputException(string message) : ModelRegistryException(message)
{
    public override bool IsInvalidInput => true;
}
