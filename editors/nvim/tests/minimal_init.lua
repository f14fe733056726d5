-- Only this plugin: no user config, no other plugins.
vim.opt.runtimepath = { vim.env.VIMRUNTIME, vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h') }
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
