-- ForgeAI for Neovim: run code in a sandbox through forgeai-ls.
-- require('forgeai').setup({ cmd = { 'forgeai-ls' }, output = 'split' | 'float', settings = {} })
-- Works from Neovim 0.7 (vim.lsp.start_client) and uses vim.lsp.start where it exists.
local output = require('forgeai.output')

local M = {}

local defaults = {
  cmd = { 'forgeai-ls' },
  filetypes = {
    'python', 'javascript', 'sh', 'bash', 'perl', 'c', 'cpp', 'rust', 'java',
    'typescript', 'ruby', 'go', 'lua', 'php', 'markdown',
  },
  output = 'split',
  settings = vim.empty_dict(),
  on_finished = nil, -- function(summary) called when a run ends
}

M.config = vim.deepcopy(defaults)
M.runs = {} -- runId -> uri, while running
M.client_id = nil

-- forgeai/runStarted: the section opens with the environment the run uses.
local function on_started(_, params)
  if not M.runs[params.runId] then
    M.runs[params.runId] = params.uri
    output.start_section(params.runId, params.uri, params.environment)
  end
end

local function on_output(_, params)
  if not M.runs[params.runId] then
    M.runs[params.runId] = params.uri
    output.start_section(params.runId, params.uri)
  end
  output.add(params.runId, params.stream, params.text)
end

local function on_finished(_, params)
  if not M.runs[params.runId] then
    output.start_section(params.runId, params.uri, params.environment)
  end
  M.runs[params.runId] = nil
  output.finish(params.runId, params)
  if M.config.on_finished then
    M.config.on_finished(params)
  end
end

local function client()
  return M.client_id and vim.lsp.get_client_by_id(M.client_id) or nil
end

local function execute(command, arguments, callback)
  local c = client()
  if not c then
    vim.notify('ForgeAI: the language server is not running', vim.log.levels.ERROR)
    return
  end
  c.request('workspace/executeCommand', { command = command, arguments = arguments },
    function(err, result)
      if err then
        vim.notify('ForgeAI: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      elseif callback then
        callback(result)
      end
    end, vim.api.nvim_get_current_buf())
end

function M.run_file()
  execute('forgeai.runFile', { vim.uri_from_bufnr(0) })
end

-- Whole lines first..last (1-based, inclusive), as a visual-line selection runs.
function M.run_selection(first, last)
  local last_line = vim.api.nvim_buf_get_lines(0, last - 1, last, false)[1] or ''
  execute('forgeai.runSelection', {
    vim.uri_from_bufnr(0),
    { start = { line = first - 1, character = 0 }, ['end'] = { line = last - 1, character = #last_line } },
  })
end

function M.stop()
  for run_id, _ in pairs(M.runs) do
    execute('forgeai.cancelRun', { run_id })
  end
end

function M.languages()
  execute('forgeai.listLanguages', {}, function(result)
    local names = {}
    for _, language in ipairs(result.languages or {}) do
      table.insert(names, ('%s (%s)'):format(language.name, language.plugin))
    end
    vim.notify('ForgeAI languages: ' .. table.concat(names, ', '))
  end)
end

-- Only once the server has answered initialize: Neovim 0.7 never clears a code-lens refresh
-- that no server could take, and would then never refresh this buffer again.
local function refresh_lenses(bufnr)
  local c = client()
  if c and c.server_capabilities and c.server_capabilities.codeLensProvider
      and vim.lsp.buf_is_attached(bufnr, c.id) and bufnr == vim.api.nvim_get_current_buf() then
    pcall(vim.lsp.codelens.refresh)
  end
end

local function attach(bufnr)
  local config = {
    name = 'forgeai_ls',
    cmd = M.config.cmd,
    root_dir = vim.fn.getcwd(),
    init_options = { forgeai = M.config.settings },
    settings = { forgeai = M.config.settings },
    handlers = {
      ['forgeai/runStarted'] = on_started,
      ['forgeai/output'] = on_output,
      ['forgeai/runFinished'] = on_finished,
    },
    on_attach = function(_, attached)
      refresh_lenses(attached)
    end,
  }
  if vim.lsp.start then -- Neovim 0.8+: reuses a running client for the same root
    M.client_id = vim.lsp.start(config, { bufnr = bufnr })
  else
    if not client() then
      M.client_id = vim.lsp.start_client(config)
    end
    vim.lsp.buf_attach_client(bufnr, M.client_id)
  end
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  output.configure(M.config.output)
  local group = vim.api.nvim_create_augroup('forgeai', { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      attach(args.buf)
      local buffer_command = vim.api.nvim_buf_create_user_command
      buffer_command(args.buf, 'ForgeAIRun', M.run_file, { desc = 'Run this file in the ForgeAI sandbox' })
      buffer_command(args.buf, 'ForgeAIRunSelection', function(command)
        M.run_selection(command.line1, command.line2)
      end, { range = true, desc = 'Run the selected lines in the ForgeAI sandbox' })
      buffer_command(args.buf, 'ForgeAIStop', M.stop, { desc = 'Stop ForgeAI runs' })
      buffer_command(args.buf, 'ForgeAILanguages', M.languages, { desc = 'List ForgeAI languages' })
    end,
  })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'InsertLeave', 'TextChanged' }, {
    group = group,
    pattern = '*',
    callback = function(args)
      refresh_lenses(args.buf)
    end,
  })
end

M.output = output
return M
