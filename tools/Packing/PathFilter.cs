using ModelCar.Common.IO;
using ModelCar.HuggingFace;

namespace ModelCar.Packing;

/// <summary>
/// Which model files go into the image: --include/--exclude with huggingface_hub's pattern rules
/// (the same <see cref="GlobFilter"/> hf-fetch uses, so one pattern selects the same files in both
/// tools), plus the metadata folders that never belong in an image.
/// </summary>
public sealed class PathFilter
{
    /// <summary>Metadata folders always left out: the HF cache folder, hf-fetch's own, and oci-pack's layer record (<see cref="LayerDigestRecord.DirectoryName"/>).</summary>
    public static readonly string[] DefaultExcludes = [".cache/", HubPaths.StateFolder + "/", LayerDigestRecord.DirectoryName + "/"];

    private readonly GlobFilter _filter;
    private readonly string[] _folderExcludes;

    private PathFilter(IReadOnlyList<string> includes, IReadOnlyList<string> excludes)
    {
        _filter = new GlobFilter(includes, excludes);
        _folderExcludes = excludes.Where(p => p.EndsWith('/')).ToArray();
        HasIncludes = includes.Count > 0;
    }

    public bool HasIncludes { get; }

    public static PathFilter Create(IEnumerable<string> includes, IEnumerable<string> excludes) =>
        new(includes.ToList(), DefaultExcludes.Concat(excludes).ToList());

    public bool IsIncluded(string relativePath) => _filter.Matches(relativePath);

    /// <summary>A folder pattern ("x/") excludes everything below <paramref name="relativeDir"/>: no need to walk it.</summary>
    public bool ExcludesFolder(string relativeDir) => _folderExcludes.Any(p => GlobFilter.FnMatch(relativeDir + "/", p));
}
