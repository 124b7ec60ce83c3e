using System.CommandLine;
using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The contract between tekton/ and the tools: every Task step's args, with sample values for the
/// params, go through the real command-line parser of the tool it runs; every result a Task
/// declares is one the tool writes; the Pipeline and PipelineRuns wire only what exists.
/// </summary>
public class TektonContractTests
{
    private sealed record ToolSpec(Func<RootCommand> Create, IReadOnlyCollection<string> Results);

    private static readonly Dictionary<string, ToolSpec> Tools = new()
    {
        ["hf-fetch"] = new(HfFetch.HfFetchCommand.Create, HfFetch.HfFetchCommand.ResultNames),
        ["oci-pack"] = new(OciPack.OciPackCommand.Create, OciPack.OciPackCommand.ResultNames),
        ["registry-push"] = new(RegistryPush.RegistryPushCommand.Create, RegistryPush.RegistryPushCommand.ResultNames),
        ["mr-register"] = new(MrRegister.MrRegisterCommand.Create, MrRegister.MrRegisterCommand.ResultNames),
    };

    /// <summary>Values for params without a default, the shape a PipelineRun passes.</summary>
    private static readonly Dictionary<string, string> Samples = new()
    {
        ["repo-id"] = "mistralai/Mistral-Small-24B-Instruct-2501",
        ["tag"] = "quantized-w4a16-2501",
        ["dest"] = "docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
        ["server"] = "https://modelregistry.rhoai-model-registries.svc:8443",
        ["model-name"] = "Mistral-Small-24B-Instruct",
        ["version-name"] = "quantized-w4a16-2501",
        ["uri"] = "oci://quay.io/modelcar/mistral-small-24b-instruct@sha256:" + new string('a', 64),
    };

    public static TheoryData<string> TaskFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Task_args_parse_with_the_real_tool_parser(string file)
    {
        var task = TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file));
        Assert.Equal("Task", task.Str("kind"));
        var spec = task.Get("spec")!;
        var values = new Dictionary<string, string>();
        foreach (var p in TektonYaml.Params(spec))
        {
            values[$"params.{p.Name}"] = p.Default ?? (Samples.TryGetValue(p.Name, out var s) ? s : throw new Xunit.Sdk.XunitException($"{file}: param '{p.Name}' has no default and no sample value"));
        }
        foreach (var w in TektonYaml.Names(spec, "workspaces"))
        {
            values[$"workspaces.{w}.path"] = $"/workspace/{w}";
        }
        var steps = spec.Seq("steps").ToList();
        Assert.NotEmpty(steps);
        foreach (var step in steps)
        {
            Assert.Null(step.Get("script")); // typed args only, no shell
            var command = step.Seq("command").Select(c => ((YamlScalarNode)c).Value!).ToList();
            Assert.Single(command);
            var tool = Path.GetFileName(command[0]);
            Assert.StartsWith("/usr/local/bin/", command[0]);
            Assert.True(Tools.ContainsKey(tool), $"{file}: unknown tool {tool}");
            var args = step.Seq("args").Select(a => TektonYaml.Substitute(((YamlScalarNode)a).Value!, values)).ToArray();
            var parse = Tools[tool].Create().Parse(args);
            Assert.True(parse.Errors.Count == 0,
                $"{file}: {tool} {string.Join(' ', args)}\n  " + string.Join("\n  ", parse.Errors.Select(e => e.Message)));
            Assert.Contains("--results-dir", args);
            Assert.Equal("/tekton/results", args[Array.IndexOf(args, "--results-dir") + 1]);

            foreach (var result in TektonYaml.Names(spec, "results"))
            {
                Assert.True(Tools[tool].Results.Contains(result), $"{file}: result '{result}' is not one {tool} writes ({string.Join(", ", Tools[tool].Results)})");
            }
        }
    }

    [Fact]
    public void Pipeline_wires_only_declared_params_results_and_workspaces()
    {
        var tasks = Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml")
            .Select(TektonYaml.Load)
            .ToDictionary(t => t.Str("metadata", "name")!, t => t.Get("spec")!);
        foreach (var file in Directory.GetFiles(TektonYaml.Dir("pipelines"), "*.yaml"))
        {
            var pipeline = TektonYaml.Load(file);
            var spec = pipeline.Get("spec")!;
            var pipelineParams = TektonYaml.Params(spec).Select(p => p.Name).ToHashSet();
            var pipelineWorkspaces = TektonYaml.Names(spec, "workspaces").ToHashSet();
            var pipelineTasks = spec.Seq("tasks").ToDictionary(t => t.Str("name")!, t => t);
            foreach (var (name, pt) in pipelineTasks)
            {
                var taskName = pt.Str("taskRef", "name")!;
                Assert.True(tasks.ContainsKey(taskName), $"{name}: no Task '{taskName}'");
                var taskSpec = tasks[taskName];
                var declared = TektonYaml.Params(taskSpec).ToDictionary(p => p.Name);
                var given = pt.Seq("params").ToDictionary(p => p.Str("name")!, p => p.Str("value") ?? string.Empty);
                foreach (var g in given.Keys)
                {
                    Assert.True(declared.ContainsKey(g), $"{name}: Task '{taskName}' has no param '{g}'");
                }
                foreach (var d in declared.Values.Where(d => d.Default is null))
                {
                    Assert.True(given.ContainsKey(d.Name), $"{name}: required param '{d.Name}' of '{taskName}' is not set");
                }
                foreach (var value in given.Values)
                {
                    foreach (System.Text.RegularExpressions.Match m in TektonYaml.Reference().Matches(value))
                    {
                        var parts = m.Groups[1].Value.Split('.');
                        if (parts[0] == "params")
                        {
                            Assert.Contains(parts[1], pipelineParams);
                        }
                        else if (parts[0] == "tasks")
                        {
                            Assert.True(pipelineTasks.ContainsKey(parts[1]), $"{name}: unknown task {parts[1]}");
                            var producer = tasks[pipelineTasks[parts[1]].Str("taskRef", "name")!];
                            Assert.Contains(parts[3], TektonYaml.Names(producer, "results"));
                            var runAfter = pt.Seq("runAfter").Select(r => ((YamlScalarNode)r).Value).ToList();
                            Assert.Contains(parts[1], runAfter);
                        }
                    }
                }
                foreach (var ws in pt.Seq("workspaces"))
                {
                    Assert.Contains(ws.Str("workspace")!, pipelineWorkspaces);
                    Assert.Contains(ws.Str("name")!, TektonYaml.Names(taskSpec, "workspaces"));
                }
                foreach (var required in taskSpec.Seq("workspaces").Where(w => w.Str("optional") != "true"))
                {
                    Assert.Contains(required.Str("name")!, pt.Seq("workspaces").Select(w => w.Str("name")));
                }
            }

            foreach (var runFile in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"))
            {
                var run = TektonYaml.Load(runFile).Get("spec")!;
                Assert.Equal(pipeline.Str("metadata", "name"), run.Str("pipelineRef", "name"));
                var given = run.Seq("params").Select(p => p.Str("name")!).ToHashSet();
                foreach (var p in TektonYaml.Params(spec).Where(p => p.Default is null))
                {
                    Assert.True(given.Contains(p.Name), $"{Path.GetFileName(runFile)}: pipeline param '{p.Name}' not set");
                }
                Assert.Equal(pipelineWorkspaces.Order(), run.Seq("workspaces").Select(w => w.Str("name")!).Order());
                Assert.Equal("1001", run.Str("taskRunTemplate", "podTemplate", "securityContext", "runAsUser"));
                Assert.Equal("1001", run.Str("taskRunTemplate", "podTemplate", "securityContext", "fsGroup"));
                var version = run.Seq("params").Single(p => p.Str("name") == "version-name").Str("value")!;
                Assert.Matches(@"^(quantized-w4a16|full-fp16)-[0-9]{4}$", version);
            }
        }
    }
}
