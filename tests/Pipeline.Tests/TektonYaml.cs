using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>Minimal typed view of the Tekton YAML files under tekton/.</summary>
internal static partial class TektonYaml
{
    public static string Dir(string sub) => Path.Combine(TestSupport.RepoPaths.Root, "tekton", sub);

    public static YamlMappingNode Load(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents.Single().RootNode;
    }

    /// <summary>Every document of a (multi-document) YAML file.</summary>
    public static IReadOnlyList<YamlMappingNode> LoadAll(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList();
    }

    public static YamlNode? Get(this YamlNode node, params string[] path)
    {
        YamlNode? current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out current))
            {
                return null;
            }
        }
        return current;
    }

    public static string? Str(this YamlNode node, params string[] path) => (node.Get(path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Seq(this YamlNode node, params string[] path) =>
        node.Get(path) is YamlSequenceNode s ? s.Children : [];

    public sealed record Param(string Name, string? Default);

    public static IReadOnlyList<Param> Params(YamlNode spec) =>
        spec.Seq("params").Select(p => new Param(p.Str("name")!, p.Get("default") switch
        {
            YamlScalarNode d => d.Value ?? string.Empty,
            YamlSequenceNode a => "[" + string.Join(", ", a.Children) + "]",
            _ => null,
        })).ToList();

    public static IReadOnlyList<string> Names(YamlNode spec, string list) => spec.Seq(list).Select(p => p.Str("name")!).ToList();

    /// <summary>Replaces $(params.x) and $(workspaces.x.path); fails on any other $(…) left.</summary>
    public static string Substitute(string text, IReadOnlyDictionary<string, string> values)
    {
        var result = Reference().Replace(text, m => values.TryGetValue(m.Groups[1].Value, out var v)
            ? v
            : throw new InvalidOperationException($"no value for $({m.Groups[1].Value}) in '{text}'"));
        return result;
    }

    [GeneratedRegex(@"\$\(([a-zA-Z0-9_.\-\[\]*]+)\)")]
    public static partial Regex Reference();
}
