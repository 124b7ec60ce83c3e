using System.Text.RegularExpressions;

namespace ModelCar.HuggingFace;

/// <summary>
/// A second full copy of the weights next to the sharded Hugging Face files: Mistral repos ship
/// <c>consolidated*.safetensors</c> (the mistral-inference format), Llama repos <c>original/</c>
/// (consolidated .pth). vLLM loads the HF files; packing both doubles the image.
/// </summary>
public static partial class DuplicateWeights
{
    public sealed record Finding(string Description, IReadOnlyList<string> Files, string ExcludePattern);

    public const string ConsolidatedPattern = "consolidated*.safetensors";
    public const string OriginalPattern = "original/**";

    [GeneratedRegex(@"(^|/)(model(-\d+-of-\d+)?\.safetensors|[^/]*\.safetensors\.index\.json)$")]
    private static partial Regex HfWeights();

    [GeneratedRegex(@"^consolidated[^/]*\.safetensors$")]
    private static partial Regex Consolidated();

    [GeneratedRegex(@"^original/.*\.(pth|pt|bin|safetensors)$")]
    private static partial Regex Original();

    /// <summary>The duplicate copies among <paramref name="paths"/>; empty unless the HF (sharded) weights are there too.</summary>
    public static IReadOnlyList<Finding> Find(IEnumerable<string> paths)
    {
        var list = paths.ToList();
        if (!list.Any(p => HfWeights().IsMatch(p) && !p.StartsWith("original/", StringComparison.Ordinal)))
        {
            return [];
        }
        var findings = new List<Finding>();
        var consolidated = list.Where(p => Consolidated().IsMatch(p)).ToList();
        if (consolidated.Count > 0)
        {
            findings.Add(new Finding("a consolidated copy (mistral-inference format)", consolidated, ConsolidatedPattern));
        }
        var original = list.Where(p => Original().IsMatch(p)).ToList();
        if (original.Count > 0)
        {
            findings.Add(new Finding("the original/ checkpoint (Meta format)", original, OriginalPattern));
        }
        return findings;
    }
}
