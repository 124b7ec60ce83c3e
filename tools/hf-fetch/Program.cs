using ModelCar.Common.Cli;

return await ToolApp.RunAsync("hf-fetch", ModelCar.HfFetch.HfFetchCommand.Create(), args);
