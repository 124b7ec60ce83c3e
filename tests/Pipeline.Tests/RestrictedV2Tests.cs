using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// Static admission check of everything under tekton/ against OpenShift's restricted-v2 SCC (and
/// pipelines-scc, whose fsGroup is MustRunAs): no fixed runAsUser/runAsGroup/fsGroup (the
/// namespace's ranges assign them), no privileged or privilege escalation, no added capabilities,
/// no host namespaces, ports or hostPath volumes, no SCC grant (anyuid) in the RBAC; every step
/// drops ALL capabilities and disallows escalation (what Kubernetes' "restricted" Pod Security
/// level asks on clusters without SCCs).
/// </summary>
public class RestrictedV2Tests
{
    private static readonly string[] Forbidden = ["runAsUser", "runAsGroup", "fsGroup", "supplementalGroups", "hostPath", "hostNetwork", "hostPID", "hostIPC", "hostPort", "procMount"];

    public static TheoryData<string> YamlFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TektonYaml.Dir(""), "*.yaml", SearchOption.AllDirectories).Order())
        {
            data.Add(Path.GetRelativePath(TektonYaml.Dir(""), f));
        }
        return data;
    }

    private static IEnumerable<(string Path, YamlNode Key, YamlNode Value)> Walk(YamlNode node, string path)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    var p = $"{path}.{((YamlScalarNode)k).Value}";
                    yield return (p, k, v);
                    foreach (var inner in Walk(v, p))
                    {
                        yield return inner;
                    }
                }
                break;
            case YamlSequenceNode seq:
                int i = 0;
                foreach (var c in seq.Children)
                {
                    foreach (var inner in Walk(c, $"{path}[{i++}]"))
                    {
                        yield return inner;
                    }
                }
                break;
        }
    }

    [Theory]
    [MemberData(nameof(YamlFiles))]
    public void Admitted_by_restricted_v2(string file)
    {
        foreach (var doc in TektonYaml.LoadAll(Path.Combine(TektonYaml.Dir(""), file)))
        {
            var kind = doc.Str("kind");
            foreach (var (path, key, value) in Walk(doc, kind ?? "?"))
            {
                var name = ((YamlScalarNode)key).Value!;
                Assert.False(Forbidden.Contains(name), $"{file}: {path} — restricted-v2 assigns or refuses it");
                if (name is "privileged" or "allowPrivilegeEscalation")
                {
                    Assert.True(((YamlScalarNode)value).Value == "false", $"{file}: {path} must be false");
                }
                if (name == "capabilities")
                {
                    Assert.Null(value.Get("add"));
                }
            }
            // no SCC grant: no SCC object, no role over SCCs, no binding to an SCC's role (system:openshift:scc:anyuid)
            Assert.NotEqual("SecurityContextConstraints", kind);
            foreach (var rule in doc.Seq("rules"))
            {
                Assert.DoesNotContain("securitycontextconstraints", rule.Seq("resources").Select(r => ((YamlScalarNode)r).Value));
            }
            if (doc.Str("roleRef", "name") is { } role)
            {
                Assert.DoesNotContain("scc", role, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("anyuid", role, StringComparison.OrdinalIgnoreCase);
            }
            if (kind == "Task")
            {
                foreach (var step in doc.Seq("spec", "steps"))
                {
                    Assert.Equal("false", step.Str("securityContext", "allowPrivilegeEscalation"));
                    Assert.Equal(["ALL"], step.Seq("securityContext", "capabilities", "drop").Select(d => ((YamlScalarNode)d).Value));
                    Assert.NotNull(step.Get("computeResources", "requests", "ephemeral-storage"));
                    Assert.NotNull(step.Get("computeResources", "requests", "memory"));
                    Assert.NotNull(step.Get("computeResources", "requests", "cpu"));
                }
            }
        }
    }

    [Fact]
    public void The_readme_says_no_fixed_uid_and_no_anyuid_is_needed()
    {
        var readme = File.ReadAllText(Path.Combine(TestSupport.RepoPaths.Root, "README.md"));
        Assert.Contains("restricted-v2", readme);
        Assert.Contains("no `anyuid`", readme);
    }
}
