using System.CommandLine;
using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The contract between tekton/ and the tools: every Task step's args, with sample values for the
/// params, go through the real command-line parser of the tool it runs; so does every step of every
/// shipped PipelineRun after Tekton's substitution (<see cref="TektonEngine"/>); every result a Task
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
    private static readonly Dictionary<string, ParamValue> Samples = new()
    {
        ["repo-id"] = ParamValue.Of("mistralai/Mistral-Small-24B-Instruct-2501"),
        ["tag"] = ParamValue.Of("quantized-w4a16-2501"),
        ["dest"] = ParamValue.Of(["--dest", "docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
            "--dest", "docker://image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct:quantized-w4a16-2501"]),
        ["output"] = ParamValue.Of(["--output", "docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
            "--output", "docker://image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct:quantized-w4a16-2501"]),
        ["server"] = ParamValue.Of("https://modelregistry.rhoai-model-registries.svc:8443"),
        ["model-name"] = ParamValue.Of("Mistral-Small-24B-Instruct"),
        ["version-name"] = ParamValue.Of("quantized-w4a16-2501"),
        ["uri"] = ParamValue.Of("oci://quay.io/modelcar/mistral-small-24b-instruct@sha256:" + new string('a', 64)),
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

    public static TheoryData<string> RunFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    private static Dictionary<string, TaskDef> LoadTasks() =>
        Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml").Select(f => TektonEngine.LoadTask(TektonYaml.Load(f))).ToDictionary(t => t.Name);

    private static void AssertParses(string where, ResolvedStep step, TaskDef task)
    {
        Assert.Single(step.Command);
        var tool = Path.GetFileName(step.Command[0]);
        Assert.StartsWith("/usr/local/bin/", step.Command[0]);
        Assert.True(Tools.ContainsKey(tool), $"{where}: unknown tool {tool}");
        var args = step.Args.ToArray();
        var parse = Tools[tool].Create().Parse(args);
        Assert.True(parse.Errors.Count == 0,
            $"{where}: {tool} {string.Join(' ', args)}\n  " + string.Join("\n  ", parse.Errors.Select(e => e.Message)));
        Assert.Contains("--results-dir", args);
        Assert.Equal("/tekton/results", args[Array.IndexOf(args, "--results-dir") + 1]);
        foreach (var result in task.Results)
        {
            Assert.True(Tools[tool].Results.Contains(result), $"{where}: result '{result}' is not one {tool} writes ({string.Join(", ", Tools[tool].Results)})");
        }
    }

    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Task_args_parse_with_the_real_tool_parser(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        Assert.NotEmpty(task.Steps);
        // one pipeline task running this Task with the samples for the params that have no default
        var given = task.Params.Where(p => p.Default is null).Select(p => (p.Name, (YamlNode)(Samples.TryGetValue(p.Name, out var s)
            ? s.IsArray ? new YamlSequenceNode(s.Array!.Select(a => new YamlScalarNode(a))) : new YamlScalarNode(s.String)
            : throw new Xunit.Sdk.XunitException($"{file}: param '{p.Name}' has no default and no sample value")))).ToList();
        var workspaces = task.Workspaces.ToDictionary(w => w.Name, w => w.Name);
        var pt = new PipelineTaskDef("t", task.Name, given, [], workspaces, 0);
        var run = new PipelineRunDef("p", new Dictionary<string, ParamValue>(), task.Workspaces.Select(w => new WorkspaceBinding(w.Name, "emptyDir", null, null)).ToList(), null);
        foreach (var step in TektonEngine.ResolveTaskRun(pt, new Dictionary<string, ParamValue>(), run, new Dictionary<string, TaskDef> { [task.Name] = task }, new Dictionary<string, IReadOnlyDictionary<string, string>>()))
        {
            AssertParses(file, step, task);
        }
    }

    /// <summary>Every step of a shipped PipelineRun, as Tekton resolves it, parses (results get sample values).</summary>
    [Theory]
    [MemberData(nameof(RunFiles))]
    public void Every_step_of_a_shipped_run_parses_after_tekton_substitution(string file)
    {
        var run = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), file)));
        var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), run.PipelineRef + ".yaml")));
        var tasks = LoadTasks();
        var pipelineParams = new Dictionary<string, ParamValue>();
        foreach (var p in pipeline.Params)
        {
            pipelineParams[p.Name] = run.Params.TryGetValue(p.Name, out var v) ? v : p.Default ?? throw new Xunit.Sdk.XunitException($"{file}: pipeline param '{p.Name}' not set");
        }
        foreach (var given in run.Params.Keys)
        {
            Assert.Contains(given, pipeline.Params.Select(p => p.Name));
        }
        var sampleResults = tasks.Values.SelectMany(t => t.Results).Distinct().ToDictionary(r => r, r => r switch
        {
            "commit" => new string('c', 40),
            "IMAGE_DIGEST" => "sha256:" + new string('d', 64),
            _ => "sample-" + r,
        });
        var results = pipeline.Tasks.ToDictionary(t => t.Name, t => (IReadOnlyDictionary<string, string>)tasks[t.TaskRef].Results.ToDictionary(r => r, r => sampleResults[r]));
        foreach (var pt in pipeline.Tasks)
        {
            foreach (var step in TektonEngine.ResolveTaskRun(pt, pipelineParams, run, tasks, results))
            {
                AssertParses($"{file} task {pt.Name}", step, tasks[pt.TaskRef]);
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
            HashSet<string> Upstream(string task)
            {
                var seen = new HashSet<string>();
                var todo = new Stack<string>(pipelineTasks[task].Seq("runAfter").Select(r => ((YamlScalarNode)r).Value!));
                while (todo.TryPop(out var t))
                {
                    if (seen.Add(t))
                    {
                        foreach (var r in pipelineTasks[t].Seq("runAfter"))
                        {
                            todo.Push(((YamlScalarNode)r).Value!);
                        }
                    }
                }
                return seen;
            }
            foreach (var (name, pt) in pipelineTasks)
            {
                var taskName = pt.Str("taskRef", "name")!;
                Assert.True(tasks.ContainsKey(taskName), $"{name}: no Task '{taskName}'");
                var taskSpec = tasks[taskName];
                var declared = TektonYaml.Params(taskSpec).ToDictionary(p => p.Name);
                var given = pt.Seq("params").ToDictionary(p => p.Str("name")!, p => p.Get("value")!);
                foreach (var g in given.Keys)
                {
                    Assert.True(declared.ContainsKey(g), $"{name}: Task '{taskName}' has no param '{g}'");
                }
                foreach (var d in declared.Values.Where(d => d.Default is null))
                {
                    Assert.True(given.ContainsKey(d.Name), $"{name}: required param '{d.Name}' of '{taskName}' is not set");
                }
                foreach (var value in given.Values.SelectMany(v => v is YamlSequenceNode s ? s.Children.Select(c => ((YamlScalarNode)c).Value ?? "") : [((YamlScalarNode)v).Value ?? ""]))
                {
                    foreach (System.Text.RegularExpressions.Match m in TektonYaml.Reference().Matches(value))
                    {
                        var parts = m.Groups[1].Value.Replace("[*]", "").Split('.');
                        if (parts[0] == "params")
                        {
                            Assert.Contains(parts[1], pipelineParams);
                        }
                        else if (parts[0] == "tasks")
                        {
                            Assert.True(pipelineTasks.ContainsKey(parts[1]), $"{name}: unknown task {parts[1]}");
                            var producer = tasks[pipelineTasks[parts[1]].Str("taskRef", "name")!];
                            Assert.Contains(parts[3], TektonYaml.Names(producer, "results"));
                            Assert.True(Upstream(name).Contains(parts[1]), $"{name} uses a result of {parts[1]} but does not run after it");
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
            if (!pipelineTasks.ContainsKey("download"))
            {
                // modelcar-build-direct: one task from the Hub to both registries, no model PVC, then register
                Assert.Equal("modelcar-build-direct", pipeline.Str("metadata", "name"));
                Assert.DoesNotContain("model", pipelineWorkspaces);
                var direct = Assert.Single(pipelineTasks.Values, t => t.Str("taskRef", "name") == "hf-pack-and-push");
                Assert.True(int.Parse(direct.Str("retries") ?? "0") >= 1, "hf-pack-and-push has no retries");
                Assert.Equal(2, direct.Seq("params").Single(p => p.Str("name") == "output").Seq("value").Count(v => ((YamlScalarNode)v).Value == "--output"));
                Assert.Contains(pipelineTasks.Values, t => t.Str("taskRef", "name") == "mr-register");
                continue;
            }
            // a retry resumes on the same PVC: download and push retry
            Assert.True(int.Parse(pipelineTasks["download"].Str("retries") ?? "0") >= 1, "download has no retries");
            Assert.True(int.Parse(pipelineTasks["push"].Str("retries") ?? "0") >= 1, "push has no retries");
            // one push task with both destinations (the image is read once)
            Assert.Single(pipelineTasks.Values, t => t.Str("taskRef", "name") == "registry-push");

            foreach (var runFile in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"))
            {
                var runDoc = TektonYaml.Load(runFile);
                var run = runDoc.Get("spec")!;
                if (run.Str("pipelineRef", "name") != pipeline.Str("metadata", "name"))
                {
                    continue;
                }
                var given = run.Seq("params").Select(p => p.Str("name")!).ToHashSet();
                foreach (var p in TektonYaml.Params(spec).Where(p => p.Default is null))
                {
                    Assert.True(given.Contains(p.Name), $"{Path.GetFileName(runFile)}: pipeline param '{p.Name}' not set");
                }
                var requiredWorkspaces = spec.Seq("workspaces").Where(w => w.Str("optional") != "true").Select(w => w.Str("name")!);
                Assert.Equal(requiredWorkspaces.Order(), run.Seq("workspaces").Select(w => w.Str("name")!).Order());
                var version = run.Seq("params").Single(p => p.Str("name") == "version-name").Str("value")!;
                Assert.Matches(@"^(quantized-w4a16|full-fp16)-[0-9]{4}$", version);
                // the duplicate weights stay out: consolidated*.safetensors and original/**
                var exclude = run.Seq("params").Single(p => p.Str("name") == "exclude").Seq("value").Select(v => ((YamlScalarNode)v).Value).ToList();
                Assert.Equal(["--exclude", "consolidated*.safetensors", "--exclude", "original/**"], exclude);
                // a fresh PVC per run is deleted when the run ends; an existing claim is kept
                var model = run.Seq("workspaces").Single(w => w.Str("name") == "model");
                if (model.Get("volumeClaimTemplate") is not null)
                {
                    Assert.Equal("true", runDoc.Str("metadata", "annotations", "tekton.dev/auto-cleanup-pvc"));
                }
                else
                {
                    Assert.NotNull(model.Str("persistentVolumeClaim", "claimName"));
                    Assert.Null(runDoc.Str("metadata", "annotations", "tekton.dev/auto-cleanup-pvc"));
                }
            }
            Assert.Contains(Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml").Select(TektonYaml.Load),
                r => r.Get("spec", "workspaces") is YamlSequenceNode ws && ws.Any(w => w.Str("persistentVolumeClaim", "claimName") is not null));
        }
        // every shipped run runs the default pipeline
        Assert.All(Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml").Select(TektonYaml.Load), r => Assert.Equal("modelcar-build", r.Str("spec", "pipelineRef", "name")));
    }

    /// <summary>Every Task declares IMAGE_URL next to IMAGE_DIGEST (Tekton Chains reads the pair).</summary>
    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Tasks_that_produce_an_image_declare_IMAGE_URL_and_IMAGE_DIGEST(string file)
    {
        var results = TektonYaml.Names(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)).Get("spec")!, "results");
        Assert.Equal(results.Contains("IMAGE_DIGEST"), results.Contains("IMAGE_URL"));
    }

    /// <summary>Every Task that talks to a server has ca-file (default: the service CA) and tls-verify params, and passes both.</summary>
    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Tasks_that_talk_to_a_server_take_ca_file_defaulting_to_the_service_CA_and_tls_verify(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        var ca = Assert.Single(task.Params, p => p.Name == "ca-file");
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt", ca.Default?.String);
        Assert.Equal("true", Assert.Single(task.Params, p => p.Name == "tls-verify").Default?.String);
        foreach (var step in task.Steps)
        {
            Assert.Equal("$(params.ca-file)", step.Args[step.Args.ToList().IndexOf("--ca-file") + 1]);
            Assert.Contains("--tls-verify=$(params.tls-verify)", step.Args);
        }
    }

    /// <summary>The registry-push README's "what the Tekton push task does" is the push step of the quantized run, arg for arg.</summary>
    [Fact]
    public void Registry_push_readme_example_is_what_the_push_task_runs()
    {
        var readme = File.ReadAllLines(Path.Combine(TestSupport.RepoPaths.Root, "tools", "registry-push", "README.md"));
        int at = Array.FindIndex(readme, l => l.StartsWith("# what the Tekton push task", StringComparison.Ordinal));
        Assert.True(at >= 0, "the example is missing");
        var lines = readme.Skip(at + 1).SkipWhile(l => l.StartsWith('#')).TakeWhile(l => l.Trim().Length > 0 && !l.StartsWith("```", StringComparison.Ordinal));
        var words = string.Join(" ", lines.Select(l => l.TrimEnd('\\', ' '))).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("registry-push", words[0]);

        var run = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), "modelcar-build-quantized.yaml")));
        var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), "modelcar-build.yaml")));
        var pipelineParams = pipeline.Params.ToDictionary(p => p.Name, p => run.Params.TryGetValue(p.Name, out var v) ? v : p.Default!);
        var results = pipeline.Tasks.ToDictionary(t => t.Name, t => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>());
        var step = Assert.Single(TektonEngine.ResolveTaskRun(pipeline.Tasks.Single(t => t.Name == "push"), pipelineParams, run, LoadTasks(), results));
        Assert.Equal(step.Args, words[1..]);
    }
}
