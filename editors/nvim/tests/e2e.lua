-- End-to-end check in a real headless Neovim: lens, run, output buffer, diagnostics,
-- visual selection. Writes a JSON report to $FORGEAI_E2E_REPORT and exits non-zero on failure.
local report = { checks = {} }
local failed = false

local function check(name, ok, detail)
  table.insert(report.checks, { name = name, ok = ok and true or false, detail = detail })
  if not ok then
    failed = true
  end
end

local function finish()
  local file = io.open(os.getenv('FORGEAI_E2E_REPORT'), 'w')
  file:write(vim.fn.json_encode(report))
  file:close()
  vim.cmd(failed and 'cquit 1' or 'qall!')
end

local finished = {}
local forgeai = require('forgeai')
forgeai.setup({
  cmd = vim.fn.json_decode(os.getenv('FORGEAI_LS_CMD')),
  on_finished = function(summary) table.insert(finished, summary) end,
})

vim.cmd('edit ' .. os.getenv('FORGEAI_E2E_FILE'))
local bufnr = vim.api.nvim_get_current_buf()

local ready = vim.wait(30000, function()
  local c = forgeai.client_id and vim.lsp.get_client_by_id(forgeai.client_id)
  return c ~= nil and c.server_capabilities ~= nil and vim.lsp.buf_is_attached(bufnr, forgeai.client_id)
end, 50)
check('server attached', ready)
if not ready then return finish() end

local lenses = {}
vim.wait(20000, function()
  vim.lsp.codelens.refresh()
  vim.wait(300, function() return #(vim.lsp.codelens.get(bufnr) or {}) > 0 end, 20)
  lenses = vim.lsp.codelens.get(bufnr) or {}
  return #lenses > 0 and lenses[1].command ~= nil
end, 100)
local titles = {}
for _, lens in ipairs(lenses) do
  table.insert(titles, lens.command and lens.command.title or '?')
end
report.lenses = titles
check('run-in-sandbox lens shown', #lenses > 0 and titles[1]:find('Run in sandbox') ~= nil, titles)

vim.api.nvim_win_set_cursor(0, { 1, 0 })
vim.lsp.codelens.run()
local ran = vim.wait(60000, function() return #finished >= 1 end, 50)
check('lens run finished', ran)
report.first = finished[1]
check('exit status of the failing file', ran and finished[1].exitCode == 1, finished[1])

local diagnostics = {}
vim.wait(5000, function()
  diagnostics = vim.diagnostic.get(bufnr)
  return #diagnostics > 0
end, 50)
report.diagnostics = {}
for _, d in ipairs(diagnostics) do
  table.insert(report.diagnostics, { line = d.lnum, message = d.message, source = d.source })
end
check('diagnostic on the raise line', #diagnostics > 0 and diagnostics[1].lnum == 2
  and diagnostics[1].source == 'forgeai', report.diagnostics)

vim.cmd('1,2ForgeAIRunSelection')
local ran_selection = vim.wait(60000, function() return #finished >= 2 end, 50)
check('selection run finished', ran_selection and finished[2].exitCode == 0, finished[2])

report.output = forgeai.output.lines()
local text = table.concat(report.output, '\n')
local _, hellos = text:gsub('hello from nvim', '')
check('output buffer has both runs', hellos == 2, report.output)
check('summary lines written', text:find('exit 1 in') ~= nil and text:find('exit 0 in') ~= nil)
check('stderr shown', text:find('ValueError: boom') ~= nil)

finish()
